"""How fresh the inventory is, for the operators' admin pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from inventory.models import SyncRound

register = template.Library()


@dataclass(frozen=True)
class Freshness:
    """The last sync rounds, summed up as one line an operator can act on."""

    level: str  # a Django messages level tag: success, warning or error
    message: str
    last_synced_at: datetime | None
    stale: bool


def stale_after_seconds() -> float:
    # The same threshold as the spawn form's "inventory.stale" flag: several missed rounds.
    return max(3 * float(settings.SYNC_INTERVAL), 60.0)


def inventory_freshness(*, now: datetime | None = None) -> Freshness:
    """Summarise the latest completed round and anything that went wrong after it."""
    now = now or timezone.now()
    completed = (
        SyncRound.objects.filter(status=SyncRound.Status.COMPLETED, finished_at__isnull=False)
        .order_by("-finished_at")
        .first()
    )
    latest = SyncRound.objects.order_by("-started_at").first()
    if latest is None:
        return Freshness(
            "warning", "The inventory has never been synced: run sync_cluster to discover the cluster.", None, True
        )
    if completed is None:
        return Freshness(
            "error",
            f"No sync round has completed yet; the latest one is {latest.get_status_display().lower()}."
            + (f" Error: {latest.error}" if latest.error else ""),
            None,
            True,
        )
    synced_at = completed.finished_at
    assert synced_at is not None  # the query above only takes rows with finished_at set
    age = (now - synced_at).total_seconds()
    stale = age > stale_after_seconds()
    message = f"Inventory last synced {timesince(synced_at, now)} ago (completed)."
    if latest.status == SyncRound.Status.FAILED:
        error = f" Error: {latest.error}" if latest.error else ""
        return Freshness("error", f"{message} The latest sync round failed.{error}", synced_at, True)
    if stale:
        return Freshness("warning", f"{message} That is stale: is sync_cluster running?", synced_at, True)
    return Freshness("success", message, synced_at, False)


@register.inclusion_tag("admin/inventory/freshness.html")
def inventory_freshness_banner() -> dict[str, Freshness]:
    return {"freshness": inventory_freshness()}
