"""The sync loop's writer sweeps orphaned notebook objects after each successful full round.

The loop announces each full round with ``inventory.signals.sync_round_finished``;
spawning's receiver does the sweep, so the inventory never imports spawning.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from inventory.models import SyncRound
from inventory.signals import sync_round_finished
from inventory.sync_loop import SyncLoop
from spawning.models import SpawnRecord
from spawning.provisioning import provision
from spawning.receivers import sweep_after_sync_round
from tests.plans import basic_plan, full_plan

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

OURS = "app.kubernetes.io/managed-by=options-portal"


def _full_round(loop: SyncLoop) -> None:
    assert loop.lock.acquire()
    try:
        loop.full_round()
    finally:
        loop.stop.set()
        loop.lock.release()


def test_a_full_round_sweeps_orphans_past_the_grace_period(kube, core_v1, namespace, settings) -> None:
    made = provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs)).objects
    assert made, "the plan makes a Hadoop ConfigMap"
    reports: list[str] = []
    # A negative grace period makes anything applied before now an orphan.
    settings.SWEEP_GRACE_SECONDS = -1
    _full_round(SyncLoop(interval=3600, stop=threading.Event(), report=reports.append, signal_rounds=True))
    assert any("orphan sweep deleted" in line for line in reports), reports
    assert core_v1.list_namespaced_config_map(namespace, label_selector=OURS).items == []


def test_the_sweep_also_deletes_spawn_records_past_their_retention(kube, settings) -> None:
    settings.SPAWN_RECORD_RETENTION_DAYS = 30
    settings.SWEEP_GRACE_SECONDS = 3600
    old = SpawnRecord.objects.create(username="ann", result=SpawnRecord.Result.PROVISIONED)
    SpawnRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = SpawnRecord.objects.create(username="bob", result=SpawnRecord.Result.PROVISIONED)
    _full_round(SyncLoop(interval=3600, stop=threading.Event(), report=lambda line: None, signal_rounds=True))
    assert list(SpawnRecord.objects.values_list("pk", flat=True)) == [recent.pk]


def test_no_sweep_when_the_loop_does_not_signal_rounds(kube, core_v1, namespace, settings) -> None:
    provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs))
    settings.SWEEP_GRACE_SECONDS = -1
    _full_round(SyncLoop(interval=3600, stop=threading.Event(), report=lambda line: None))
    assert len(core_v1.list_namespaced_config_map(namespace, label_selector=OURS).items) == 1


def test_no_sweep_after_a_failed_round(kube, core_v1, namespace, settings) -> None:
    provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs))
    settings.SWEEP_GRACE_SECONDS = -1
    failed = SyncRound.objects.create(status=SyncRound.Status.FAILED, finished_at=timezone.now(), error="refused")
    reports: list[str] = []
    sweep_after_sync_round(sender=SyncLoop, sync_round=failed, report=reports.append)
    assert reports == []
    assert len(core_v1.list_namespaced_config_map(namespace, label_selector=OURS).items) == 1


@pytest.fixture
def failing_receiver() -> Iterator[list[SyncRound]]:
    """A receiver that raises after noting the round it was given; disconnected after the test."""
    seen: list[SyncRound] = []

    def refuse(sender: Any, *, sync_round: SyncRound, **kwargs: Any) -> None:
        seen.append(sync_round)
        raise RuntimeError("receiver <broken>")

    sync_round_finished.connect(refuse, dispatch_uid="tests.refuse")
    try:
        yield seen
    finally:
        sync_round_finished.disconnect(dispatch_uid="tests.refuse")


def test_a_failing_receiver_is_reported_and_neither_the_loop_nor_the_sweep_stops(
    kube, core_v1, namespace, settings, failing_receiver: list[SyncRound]
) -> None:
    provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs))
    settings.SWEEP_GRACE_SECONDS = -1
    reports: list[str] = []
    loop = SyncLoop(interval=3600, stop=threading.Event(), report=reports.append, signal_rounds=True)
    _full_round(loop)

    [announced] = failing_receiver
    latest = SyncRound.objects.filter(kind=SyncRound.Kind.FULL).latest()
    assert announced.pk == latest.pk
    assert announced.status == SyncRound.Status.COMPLETED
    assert any("refuse failed" in line and "receiver <broken>" in line for line in reports), reports
    # The other receiver still ran, and the loop went on to schedule its next round and its watchers.
    assert core_v1.list_namespaced_config_map(namespace, label_selector=OURS).items == []
    assert loop.next_full_round > 0
    assert set(loop.watchers) == set(loop.state.listed)
    assert loop.watchers
