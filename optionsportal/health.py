"""Liveness and readiness for probes."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.utils import Error as DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers; with ``?sync=1`` also when the last sync round is recent."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # The driver's message names hosts, users and files: for the logs, not for an
        # unauthenticated caller.
        logger.warning("readiness: the database is unavailable: %s", exc)
        return JsonResponse({"status": "unavailable", "database": "unavailable"}, status=503)
    body: dict[str, object] = {"status": "ok", "database": "ok"}
    if request.GET.get("sync"):
        fresh, detail = sync_freshness()
        body["sync"] = detail
        if not fresh:
            body["status"] = "unavailable"
            return JsonResponse(body, status=503)
    return JsonResponse(body)


def sync_freshness() -> tuple[bool, str]:
    """Whether the last completed sync round is recent enough, and a sentence saying so."""
    from inventory.models import SyncRound

    last = SyncRound.objects.filter(status=SyncRound.Status.COMPLETED).order_by("-started_at").first()
    if last is None:
        return False, "no sync round has completed yet"
    age = timezone.now() - (last.finished_at or last.started_at)
    limit = timedelta(seconds=settings.SYNC_MAX_AGE_SECONDS)
    seconds = int(age.total_seconds())
    if age > limit:
        return False, f"last completed round finished {seconds}s ago (limit {int(limit.total_seconds())}s)"
    return True, f"last completed round finished {seconds}s ago"
