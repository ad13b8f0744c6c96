"""The dashboard's figures on /metrics, read from the database at scrape time.

Like ``optionsportal.metrics.DatabaseCollector``: every replica and worker
reports the same figures, and the scrape costs the same fixed number of queries
as the dashboard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.db.utils import Error as DatabaseError
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dashboard.selectors import (
    compute_usage,
    lifecycle_notebook_list,
    quota_use_list,
    running_notebook_list,
    spawn_figures,
)
from inventory.freshness import inventory_freshness

# Prometheus' base units: cores, bytes, devices.
_UNIT_SCALE = {"GiB": 2**30}


class DashboardCollector(Collector):
    """Running notebooks, requests against capacity, quota use, recent spawns and the inventory's age."""

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except DatabaseError:
            # A scrape must not fail because the database is away; /readyz reports that.
            return

    def _collect(self) -> Iterator[Metric]:
        _, groups = spawn_figures(days=1)
        today = GaugeMetricFamily(
            "optionsportal_spawns_today",
            "Spawn records since midnight (server time), by result, profile and machine type.",
            labels=["result", "profile", "machine_type"],
        )
        for group in groups:
            for result, count in group.counts.items():
                if count:
                    today.add_metric([result, group.profile, group.machine_type], count)
        yield today

        running = GaugeMetricFamily(
            "optionsportal_notebooks_running",
            "Running notebook pods, by profile, image and machine type.",
            labels=["profile", "image", "machine_type"],
        )
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        notebooks = running_notebook_list()
        for notebook in notebooks:
            counts[(notebook.profile, notebook.image, notebook.machine_type)] += 1
        for key, count in sorted(counts.items()):
            running.add_metric(list(key), count)
        yield running

        old_images = GaugeMetricFamily(
            "optionsportal_notebooks_on_old_images",
            "Running notebook pods whose image is deprecated or retired (image lifecycle), by state and image.",
            labels=["state", "image", "successor"],
        )
        old: dict[tuple[str, str, str], int] = defaultdict(int)
        for on_old in lifecycle_notebook_list(notebooks):
            old[(on_old.state, on_old.image, on_old.successor)] += 1
        for key, count in sorted(old.items()):
            old_images.add_metric(list(key), count)
        yield old_images

        usage, nodes, schedulable = compute_usage()
        requested = GaugeMetricFamily(
            "optionsportal_compute_requested",
            "Requested by running pods on present nodes (cores, bytes, devices).",
            labels=["resource"],
        )
        allocatable = GaugeMetricFamily(
            "optionsportal_compute_allocatable",
            "Allocatable on present nodes (cores, bytes, devices).",
            labels=["resource"],
        )
        for figure in usage:
            scale = _UNIT_SCALE.get(figure.unit, 1)
            requested.add_metric([figure.resource], figure.used * scale)
            allocatable.add_metric([figure.resource], figure.capacity * scale)
        yield requested
        yield allocatable
        node_count = GaugeMetricFamily(
            "optionsportal_nodes", "Present nodes, by whether they take new pods.", labels=["schedulable"]
        )
        node_count.add_metric(["true"], schedulable)
        node_count.add_metric(["false"], nodes - schedulable)
        yield node_count

        used = GaugeMetricFamily(
            "optionsportal_quota_used",
            "ResourceQuota status.used, in the resource's base unit.",
            labels=["namespace", "quota", "resource"],
        )
        hard = GaugeMetricFamily(
            "optionsportal_quota_hard",
            "ResourceQuota status.hard, in the resource's base unit.",
            labels=["namespace", "quota", "resource"],
        )
        for quota in quota_use_list():
            quota_labels = [quota.namespace, quota.quota, quota.resource]
            if quota.used_milli is not None:
                used.add_metric(quota_labels, quota.used_milli / 1000)
            if quota.hard_milli is not None:
                hard.add_metric(quota_labels, quota.hard_milli / 1000)
        yield used
        yield hard

        freshness = inventory_freshness()
        if freshness.age is not None:
            yield GaugeMetricFamily(
                "optionsportal_inventory_age_seconds",
                "Time since the latest completed sync round finished.",
                value=freshness.age.total_seconds(),
            )
        yield GaugeMetricFamily(
            "optionsportal_inventory_stale",
            "1 when the spawn form would call the inventory stale (too old, or the latest full round failed).",
            value=1.0 if freshness.stale else 0.0,
        )
