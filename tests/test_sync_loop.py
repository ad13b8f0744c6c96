"""The long-running sync: changes arrive through watches, and expired watches are survived.

The loop runs in a thread with a resync interval far longer than the test,
so any change the database shows came through a watch, not a full round.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from inventory.models import ServiceAccount, SyncRound
from inventory.sync_loop import SyncLoop
from kube.client import KubeGone, KubeUnavailable
from kube.discovery import Kind, WatchEvent, watch_objects

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

ROLE = "arn:aws:iam::123456789012:role/reader"


def _account(core: k8s.CoreV1Api, ns: str, name: str, role: str = ROLE) -> None:
    core.create_namespaced_service_account(
        ns,
        {
            "metadata": {
                "name": name,
                "labels": {"hub.jupyter.org/notebook-service-account": "true"},
                "annotations": {"eks.amazonaws.com/role-arn": role},
            }
        },
    )


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``check`` held; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"not seen within {timeout} s")


class RunningLoop:
    """A SyncLoop in a thread, as the command runs it, stopped at the end of the test."""

    def __init__(self, **kwargs: Any) -> None:
        self.lines: list[str] = []
        self.loop = SyncLoop(interval=3600, watch_timeout=5, report=self.lines.append, **kwargs)
        self.thread = threading.Thread(target=self.loop.run, name="sync-loop", daemon=True)

    def __enter__(self) -> RunningLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


def _role(key: str) -> str | None:
    row = ServiceAccount.objects.filter(key=key).first()
    return row.observed_role_arn if row else None


def test_a_change_arrives_through_the_watch_without_a_full_round(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    _account(core_v1, namespace, "reader")
    key = f"{namespace}:reader"
    with RunningLoop() as running:
        loop = running.loop
        _wait_for(lambda: _role(key) == ROLE, timeout=15)
        _wait_for(lambda: set(loop.watchers) == set(Kind))
        full_rounds = SyncRound.objects.filter(kind=SyncRound.Kind.FULL).count()

        new_role = "arn:aws:iam::123456789012:role/writer"
        core_v1.patch_namespaced_service_account(
            "reader", namespace, {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": new_role}}}
        )
        latency = _wait_for(lambda: _role(key) == new_role, timeout=5)

        _account(core_v1, namespace, "added-later")
        _wait_for(lambda: ServiceAccount.objects.filter(key=f"{namespace}:added-later").exists())
        core_v1.delete_namespaced_service_account("added-later", namespace, _preload_content=False)
        _wait_for(lambda: ServiceAccount.objects.get(key=f"{namespace}:added-later").missing_since is not None)

        assert SyncRound.objects.filter(kind=SyncRound.Kind.FULL).count() == full_rounds == 1
        assert SyncRound.objects.filter(kind=SyncRound.Kind.WATCH, status=SyncRound.Status.COMPLETED).exists()
        assert all(w.is_alive() for w in loop.watchers.values())
    assert latency < 2.0
    assert any(f"~ service_accounts {key}" in line for line in running.lines)
    assert any(f"- service_accounts {namespace}:added-later" in line for line in running.lines)


class FailingOnce:
    """The real watch, except that its first call for one kind fails as a server would."""

    def __init__(self, kind: Kind, error: Exception) -> None:
        self.kind = kind
        self.error = error
        self.failed = threading.Event()

    def __call__(self, kind: Kind, **kwargs: Any) -> Iterator[WatchEvent]:
        if kind is self.kind and not self.failed.is_set():
            self.failed.set()
            raise self.error
        return watch_objects(kind, **kwargs)


@pytest.mark.parametrize(
    "error",
    [
        KubeGone("watching ServiceAccounts: too old resource version: 1 (705) (HTTP 410)", status=410),
        KubeUnavailable("watching ServiceAccounts: the Kubernetes API cannot be reached (connection reset)"),
    ],
    ids=["410-gone", "dropped"],
)
def test_an_expired_or_dropped_watch_lists_again_and_keeps_watching(
    kube, core_v1: k8s.CoreV1Api, namespace: str, error: Exception
) -> None:
    _account(core_v1, namespace, "reader")
    failing = FailingOnce(Kind.SERVICE_ACCOUNT, error)
    with RunningLoop(watch=failing) as running:
        loop = running.loop
        _wait_for(lambda: _role(f"{namespace}:reader") == ROLE, timeout=15)
        _wait_for(failing.failed.is_set)
        watcher = loop.watchers[Kind.SERVICE_ACCOUNT]
        _wait_for(lambda: watcher.relists == 1)

        _account(core_v1, namespace, "after-relist")
        _wait_for(lambda: ServiceAccount.objects.filter(key=f"{namespace}:after-relist").exists())

        assert loop.watchers[Kind.SERVICE_ACCOUNT] is watcher and watcher.is_alive()
        assert SyncRound.objects.filter(kind=SyncRound.Kind.FULL).count() == 1
