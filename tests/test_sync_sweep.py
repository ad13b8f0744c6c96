"""The sync loop's writer sweeps orphaned notebook objects after each successful full round."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.management.commands.sync_cluster import SyncLoop
from spawning.models import SpawnRecord
from spawning.provisioning import provision
from tests.plans import basic_plan, full_plan

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

OURS = "app.kubernetes.io/managed-by=options-portal"


def test_a_full_round_sweeps_orphans_past_the_grace_period(kube, core_v1, namespace) -> None:
    made = provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs)).objects
    assert made, "the plan makes a Hadoop ConfigMap"
    reports: list[str] = []
    # A negative grace period makes anything applied before now an orphan.
    loop = SyncLoop(interval=3600, stop=threading.Event(), report=reports.append, sweep_grace_seconds=-1)
    assert loop.lock.acquire()
    try:
        loop.full_round()
    finally:
        loop.stop.set()
        loop.lock.release()
    assert any("orphan sweep deleted" in line for line in reports), reports
    assert core_v1.list_namespaced_config_map(namespace, label_selector=OURS).items == []


def test_the_sweep_also_deletes_spawn_records_past_their_retention(kube, settings) -> None:
    settings.SPAWN_RECORD_RETENTION_DAYS = 30
    old = SpawnRecord.objects.create(username="ann", result=SpawnRecord.Result.PROVISIONED)
    SpawnRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = SpawnRecord.objects.create(username="bob", result=SpawnRecord.Result.PROVISIONED)
    loop = SyncLoop(interval=3600, stop=threading.Event(), report=lambda line: None, sweep_grace_seconds=3600)
    assert loop.lock.acquire()
    try:
        loop.full_round()
    finally:
        loop.stop.set()
        loop.lock.release()
    assert list(SpawnRecord.objects.values_list("pk", flat=True)) == [recent.pk]


def test_no_sweep_when_the_loop_has_no_grace_period(kube, core_v1, namespace) -> None:
    provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs))
    loop = SyncLoop(interval=3600, stop=threading.Event(), report=lambda line: None)
    assert loop.lock.acquire()
    try:
        loop.full_round()
    finally:
        loop.stop.set()
        loop.lock.release()
    assert len(core_v1.list_namespaced_config_map(namespace, label_selector=OURS).items) == 1
