"""Prometheus metrics at /metrics.

Request counts and latencies are counted in each process (gunicorn's workers
share them through PROMETHEUS_MULTIPROC_DIR when it is set). Spawn outcomes,
the sync's last round, the inventory's size and the dashboard's figures
(``dashboard.metrics``) are read from the database at scrape time, so every replica reports the same, restart-proof figures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.db.models import Count
from django.db.utils import Error as DatabaseError
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "optionsportal_http_requests_total",
    "HTTP requests served, by endpoint and status code.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "optionsportal_http_request_duration_seconds",
    "Time to serve a request, by endpoint.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class DatabaseCollector(Collector):
    """Figures that live in the database: spawns, sync rounds, inventory size."""

    def collect(self) -> Iterator[Metric]:
        from inventory.models import GafferGraph, HdfsInstance, Namespace, NotebookVolume, ServiceAccount, SyncRound
        from spawning.models import SpawnRecord

        try:
            spawns = GaugeMetricFamily(
                "optionsportal_spawns", "Spawns recorded, by result (all time).", labels=["result"]
            )
            for row in SpawnRecord.objects.values("result").annotate(n=Count("id")).order_by():
                spawns.add_metric([row["result"]], row["n"])
            yield spawns

            inventory = GaugeMetricFamily(
                "optionsportal_inventory_objects", "Inventory rows by kind and state.", labels=["kind", "state"]
            )
            for kind, model in (
                ("hdfs", HdfsInstance),
                ("gaffer_graph", GafferGraph),
                ("service_account", ServiceAccount),
                ("volume", NotebookVolume),
                ("namespace", Namespace),
            ):
                counts = model.objects.aggregate(total=Count("pk"), missing=Count("pk", filter=_missing_filter()))
                inventory.add_metric([kind, "present"], counts["total"] - counts["missing"])
                inventory.add_metric([kind, "missing"], counts["missing"])
            yield inventory

            last = SyncRound.objects.exclude(status=SyncRound.Status.RUNNING).order_by("-started_at").first()
            if last is not None:
                yield GaugeMetricFamily(
                    "optionsportal_sync_last_round_timestamp_seconds",
                    "When the last finished sync round started.",
                    value=last.started_at.timestamp(),
                )
                yield GaugeMetricFamily(
                    "optionsportal_sync_last_round_duration_seconds",
                    "How long the last finished sync round took.",
                    value=last.duration_seconds or 0.0,
                )
                yield GaugeMetricFamily(
                    "optionsportal_sync_last_round_success",
                    "1 when the last finished sync round completed, 0 when it failed.",
                    value=1.0 if last.status == SyncRound.Status.COMPLETED else 0.0,
                )
                rows = GaugeMetricFamily(
                    "optionsportal_sync_last_round_rows",
                    "Rows the last sync round wrote, by change.",
                    labels=["change"],
                )
                for change in ("added", "changed", "marked_missing", "returned", "objects_seen"):
                    rows.add_metric([change], getattr(last, change))
                yield rows
        except DatabaseError:
            # A scrape must not fail because the database is away; /readyz reports that.
            return


def _missing_filter():  # type: ignore[no-untyped-def]
    from django.db.models import Q

    return Q(missing_since__isnull=False)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(REQUEST_SECONDS)
    registry.register(DatabaseCollector())
    from dashboard.metrics import DashboardCollector

    registry.register(DashboardCollector())
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
