"""How fresh the inventory is, for the operators' admin pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from inventory import freshness

register = template.Library()


@dataclass(frozen=True)
class Banner:
    """The inventory's freshness, summed up as one line an operator can act on."""

    level: str  # a Django messages level tag: success, warning or error
    message: str
    last_synced_at: datetime | None
    stale: bool


def freshness_banner(*, now: datetime | None = None) -> Banner:
    """The line for the rule in ``inventory.freshness``: when the inventory was synced, and what is wrong."""
    now = now or timezone.now()
    fresh = freshness.inventory_freshness(now=now)
    error = f" Error: {fresh.latest_full_error}" if fresh.latest_full_error else ""
    synced_at = fresh.last_synced_at
    if synced_at is None:
        if fresh.latest_full_failed:
            return Banner("error", f"No sync round has completed yet; the latest one failed.{error}", None, True)
        return Banner(
            "warning", "The inventory has never been synced: run sync_cluster to discover the cluster.", None, True
        )
    message = f"Inventory last synced {timesince(synced_at, now)} ago (completed)."
    if fresh.latest_full_failed:
        return Banner("error", f"{message} The latest sync round failed.{error}", synced_at, True)
    if fresh.stale:
        return Banner("warning", f"{message} That is stale: is sync_cluster running?", synced_at, True)
    return Banner("success", message, synced_at, False)


@register.inclusion_tag("admin/inventory/freshness.html")
def inventory_freshness_banner() -> dict[str, Banner]:
    return {"freshness": freshness_banner()}
