"""/metrics in Prometheus format, JSON log lines with request context, readiness of the sync."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from inventory.models import HdfsInstance, SyncRound
from optionsportal.logs import JsonFormatter, bind_user, request_id_var
from spawning.models import SpawnRecord


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.django_db
def test_metrics_report_requests_spawns_sync_and_inventory(client) -> None:
    now = timezone.now()
    HdfsInstance.objects.create(key="a:one", namespace="a", name="one")
    HdfsInstance.objects.create(key="a:two", namespace="a", name="two", missing_since=now)
    SpawnRecord.objects.create(username="ann", result=SpawnRecord.Result.PROVISIONED)
    SpawnRecord.objects.create(username="bob", result=SpawnRecord.Result.REFUSED)
    SpawnRecord.objects.create(username="cy", result=SpawnRecord.Result.REFUSED)
    SyncRound.objects.create(
        status=SyncRound.Status.COMPLETED,
        started_at=now - timedelta(seconds=3),
        finished_at=now,
        added=5,
        objects_seen=9,
    )
    client.get("/healthz")
    client.get("/healthz")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = _samples(response.content.decode())

    healthz = (
        "optionsportal_http_requests_total",
        (("endpoint", "healthz"), ("method", "GET"), ("status", "200")),
    )
    assert samples[healthz] >= 2
    assert samples[("optionsportal_spawns", (("result", "refused"),))] == 2
    assert samples[("optionsportal_spawns", (("result", "provisioned"),))] == 1
    assert samples[("optionsportal_inventory_objects", (("kind", "hdfs"), ("state", "present")))] == 1
    assert samples[("optionsportal_inventory_objects", (("kind", "hdfs"), ("state", "missing")))] == 1
    assert samples[("optionsportal_sync_last_round_duration_seconds", ())] == pytest.approx(3.0)
    assert samples[("optionsportal_sync_last_round_success", ())] == 1
    assert samples[("optionsportal_sync_last_round_rows", (("change", "added"),))] == 5


@pytest.mark.django_db
def test_metric_labels_never_carry_raw_paths(client) -> None:
    client.get("/no/such/page/<script>")
    text = client.get("/metrics").content.decode()
    assert "<script>" not in text
    assert 'endpoint="other"' in text


def test_json_log_line_has_request_context_and_redacts_secrets() -> None:
    token = request_id_var.set("req-123")
    bind_user("ann")
    try:
        record = logging.makeLogRecord(
            {"name": "optionsportal.test", "levelname": "INFO", "msg": "spawned %s", "args": ("ann",)}
        )
        record.token = "s3cret-token"
        record.namespace = "user-ann"
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "spawned ann"
    assert entry["request_id"] == "req-123"
    assert entry["user"] == "ann"
    assert entry["namespace"] == "user-ann"
    assert entry["token"] == "[redacted]"
    assert "s3cret-token" not in line


@pytest.mark.django_db
def test_request_logs_are_json_with_a_request_id(client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="optionsportal.request")
    response = client.get("/readyz", headers={"X-Request-Id": "abc-42"})
    assert response["X-Request-Id"] == "abc-42"
    client.get("/admin/login/", headers={"X-Request-Id": "bad id with spaces"})
    records = [r for r in caplog.records if r.name == "optionsportal.request"]
    assert records, "the admin request is logged"
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["status"] == 200
    assert line["endpoint"] == "/admin/login/"
    assert len(line["request_id"]) == 32 and " " not in line["request_id"]


@pytest.mark.django_db
def test_readyz_for_the_sync_worker_needs_a_recent_round(client, settings) -> None:
    settings.SYNC_MAX_AGE_SECONDS = 60
    assert client.get("/readyz?sync=1").status_code == 503
    SyncRound.objects.create(
        status=SyncRound.Status.COMPLETED,
        started_at=timezone.now() - timedelta(minutes=10),
        finished_at=timezone.now() - timedelta(minutes=10),
    )
    stale = client.get("/readyz?sync=1")
    assert stale.status_code == 503
    assert "limit 60s" in stale.json()["sync"]
    SyncRound.objects.create(status=SyncRound.Status.COMPLETED, finished_at=timezone.now())
    assert client.get("/readyz?sync=1").status_code == 200
    assert client.get("/readyz").status_code == 200
