"""How fresh the inventory is: the one rule the spawn form, the admin and the probes share.

The inventory counts as synced at the end of its latest completed round, full
or watch. It is stale when no round has completed, when that was longer ago
than ``stale_after`` (by default several missed full rounds), or when the
latest finished full round failed: the cluster could not be listed, whatever
watch rounds did since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inventory.models import SyncRound


@dataclass(frozen=True)
class Freshness:
    """The inventory's age and whether to distrust it."""

    last_synced_at: datetime | None
    age: timedelta | None
    stale_after: timedelta
    latest_full_failed: bool
    latest_full_error: str = ""

    @property
    def too_old(self) -> bool:
        return self.age is None or self.age > self.stale_after

    @property
    def stale(self) -> bool:
        return self.too_old or self.latest_full_failed


def default_stale_after() -> timedelta:
    # Several missed rounds in a row mean the sync is not running.
    return timedelta(seconds=max(3 * float(settings.SYNC_INTERVAL), 60.0))


def freshness_from(
    last_completed: datetime | None,
    latest_full_status: str | None,
    latest_full_error: str = "",
    *,
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> Freshness:
    """The rule, from the two facts it needs: when the latest completed round finished, and
    the status of the latest finished full round."""
    age = None if last_completed is None else (now or timezone.now()) - last_completed
    failed = latest_full_status == SyncRound.Status.FAILED
    return Freshness(
        last_synced_at=last_completed,
        age=age,
        stale_after=stale_after if stale_after is not None else default_stale_after(),
        latest_full_failed=failed,
        latest_full_error=latest_full_error if failed else "",
    )


def inventory_freshness(*, now: datetime | None = None, stale_after: timedelta | None = None) -> Freshness:
    """The inventory's freshness, read in one query."""
    latest_full = (
        SyncRound.objects.filter(kind=SyncRound.Kind.FULL)
        .exclude(status=SyncRound.Status.RUNNING)
        .order_by("-started_at")
    )
    # The latest full round's status and error ride along with the last completed round.
    row = (
        SyncRound.objects.filter(status=SyncRound.Status.COMPLETED, finished_at__isnull=False)
        .annotate(
            latest_full_status=Subquery(latest_full.values("status")[:1]),
            latest_full_error=Subquery(latest_full.values("error")[:1]),
        )
        # By start, on its index: rounds never overlap (one writer), and rounds are never pruned.
        .order_by("-started_at")
        .values_list("finished_at", "latest_full_status", "latest_full_error")
        .first()
    )
    if row is None:
        # Nothing completed yet; a failed first round still says why.
        failed = latest_full.values_list("status", "error").first()
        row = (None, *(failed or (None, "")))
    last_completed, status, error = row
    return freshness_from(last_completed, status, error or "", now=now, stale_after=stale_after)


def as_aware(value: datetime | str | None) -> datetime | None:
    """A datetime read by raw SQL: SQLite hands back naive UTC datetimes, or the stored text."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value
