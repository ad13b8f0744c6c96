"""Liveness and readiness for probes."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.utils import Error as DatabaseError
from django.http import HttpRequest, JsonResponse

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
    """Whether the inventory is fresh by the sync worker's own limit, and a sentence saying so.

    The rule is ``inventory.freshness``'s; the probe only brings its threshold,
    ``SYNC_MAX_AGE_SECONDS``.
    """
    from inventory.freshness import inventory_freshness

    limit = timedelta(seconds=settings.SYNC_MAX_AGE_SECONDS)
    fresh = inventory_freshness(stale_after=limit)
    if fresh.age is None:
        return False, "no sync round has completed yet"
    detail = f"last completed round finished {int(fresh.age.total_seconds())}s ago"
    if fresh.latest_full_failed:
        return False, f"{detail}, and the latest full round failed: {fresh.latest_full_error}"
    if fresh.too_old:
        return False, f"{detail} (limit {int(limit.total_seconds())}s)"
    return True, detail
