"""The dashboard on the admin home: ``{% load dashboard %}{% dashboard_panels %}``."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from dashboard import svg
from dashboard.selectors import Dashboard, Tally, dashboard_get

register = template.Library()


def _tally_chart(chart_id: str, title: str, tallies: tuple[Tally, ...]) -> str:
    peak = max([tally.notebooks for tally in tallies] or [0])
    bars = [
        svg.Bar(label=tally.label, value=tally.notebooks, maximum=peak, text=f"{tally.notebooks}") for tally in tallies
    ]
    total = sum(tally.notebooks for tally in tallies)
    return svg.bar_chart(chart_id, title, f"{total} running notebooks, counted by {title.split(' by ')[-1]}.", bars)


def charts(board: Dashboard) -> dict[str, Any]:
    columns = [day.day.isoformat() for day in board.days]
    series = [
        svg.Series(name=label, css_class=f"op-result-{value}", values=[d.counts.get(value, 0) for d in board.days])
        for value, label in board.results
    ]
    total = sum(day.total for day in board.days)
    usage_bars = [
        svg.Bar(
            label=usage.label,
            value=usage.used,
            maximum=usage.capacity,
            text=f"{usage.used:g} of {usage.capacity:g} {usage.unit} ({usage.percent:.0f}%)",
            css_class="op-bar op-bar-high" if usage.percent >= 90 else "op-bar",
        )
        for usage in board.usage
    ]
    quota_bars = [
        svg.Bar(
            label=f"{quota.namespace} · {quota.quota} · {quota.resource}",
            value=float(quota.used_milli or 0),
            maximum=float(quota.hard_milli or 0),
            text=f"{quota.used} of {quota.hard}",
            css_class="op-bar op-bar-high" if (quota.percent or 0) >= 90 else "op-bar",
        )
        for quota in board.quotas
    ]
    return {
        "spawns": svg.column_chart(
            "dash-spawns-chart",
            "Spawns per day by result",
            f"{total} spawn records in the last {len(board.days)} days, stacked by result.",
            columns,
            series,
        ),
        "by_profile": _tally_chart("dash-running-profile-chart", "Running notebooks by profile", board.by_profile),
        "by_image": _tally_chart("dash-running-image-chart", "Running notebooks by image", board.by_image),
        "by_machine_type": _tally_chart(
            "dash-running-machine-type-chart", "Running notebooks by machine type", board.by_machine_type
        ),
        "usage": svg.bar_chart(
            "dash-usage-chart",
            "Requested against allocatable",
            f"Requests of running pods against what {board.nodes} present nodes can allocate.",
            usage_bars,
        ),
        "quotas": svg.bar_chart(
            "dash-quota-chart", "Quota used per namespace", "Used against hard, per ResourceQuota resource.", quota_bars
        ),
    }


@register.inclusion_tag("dashboard/panels.html")
def dashboard_panels() -> dict[str, Any]:
    board = dashboard_get()
    now = timezone.now()
    synced = board.freshness.last_synced_at
    return {
        "board": board,
        "charts": charts(board),
        "synced_ago": timesince(synced, now) if synced else "",
    }


@register.filter
def count_of(counts: dict[str, int], result: str) -> int:
    return counts.get(result, 0)
