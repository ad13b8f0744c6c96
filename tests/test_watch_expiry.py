"""A real 410 Gone: watches sent straight to etcd, whose history is compacted away.

The shared test cluster keeps a watch cache, which replays recent history; this
module starts a private cluster without one (KUBE_WATCH_CACHE=false), so that
after `etcdctl compact` the apiserver answers an old resourceVersion with 410
exactly as a long-running cluster does once its history has moved on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from inventory.models import HdfsInstance
from inventory.sync_loop import KindWatcher, SyncLoop
from kube.client import KubeGone, reset_api_client
from kube.discovery import Kind, list_objects, watch_objects

pytestmark = [pytest.mark.kube]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test-kube.sh"
HDFS = {"app.kubernetes.io/name": "hdfs", "app.kubernetes.io/component": "namenode"}


class UncachedCluster:
    def __init__(self, state: Path) -> None:
        env = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines() if "=" in line)
        self.kubeconfig = env["KUBECONFIG"]
        self.etcd = env["ETCD_ENDPOINT"]
        assert env["KUBE_WATCH_CACHE"] == "false"
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        self.core = k8s.CoreV1Api(k8s.ApiClient(configuration))

    def compact(self) -> int:
        """Drop all etcd history before now; returns the revision compacted at."""
        status = subprocess.run(
            ["etcdctl", "--endpoints", self.etcd, "endpoint", "status", "-w", "json"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        revision = int(json.loads(status.stdout)[0]["Status"]["header"]["revision"])
        subprocess.run(
            ["etcdctl", "--endpoints", self.etcd, "compact", str(revision)],
            capture_output=True,
            check=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        return revision

    def namenode(self, namespace: str, instance: str) -> None:
        self.core.create_namespaced_service(
            namespace,
            {
                "metadata": {
                    "name": f"{instance}-namenode",
                    "labels": {**HDFS, "app.kubernetes.io/instance": instance},
                },
                "spec": {"ports": [{"name": "client-rpc", "port": 8020}]},
            },
        )


@pytest.fixture(scope="module")
def uncached_cluster() -> Iterator[UncachedCluster]:
    state = Path(tempfile.mkdtemp(prefix="op-410-"))
    started = subprocess.run(
        [str(SCRIPT), "start", str(state)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "KUBE_WATCH_CACHE": "false"},
    )
    if started.returncode != 0:
        pytest.fail("The uncached test cluster could not be started:\n" + started.stdout + started.stderr)
    try:
        yield UncachedCluster(state)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def uncached(uncached_cluster: UncachedCluster, settings) -> Iterator[UncachedCluster]:
    settings.KUBECONFIG = uncached_cluster.kubeconfig
    reset_api_client()
    yield uncached_cluster
    reset_api_client()


def _fresh_namespace(cluster: UncachedCluster) -> str:
    name = f"t410-{time.monotonic_ns() % 10**9}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    return name


def test_a_watch_from_a_compacted_version_is_a_real_410(uncached: UncachedCluster) -> None:
    namespace = _fresh_namespace(uncached)
    old_version = list_objects(Kind.SERVICE).resource_version
    uncached.namenode(namespace, "moved-on")
    uncached.namenode(namespace, "moved-further")
    uncached.compact()

    with pytest.raises(KubeGone, match="410"):
        for _ in watch_objects(Kind.SERVICE, resource_version=old_version, timeout_seconds=2):
            pass


@pytest.mark.django_db(transaction=True)
def test_the_loop_lists_again_after_a_real_410_and_keeps_one_watch_per_kind(uncached: UncachedCluster) -> None:
    namespace = _fresh_namespace(uncached)
    loop = SyncLoop(interval=3600, watch_timeout=1, report=lambda line: None)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(loop.watchers) < len(Kind) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(loop.watchers) == len(Kind), "every kind is watched after the first round"
        service_watcher = loop.watchers[Kind.SERVICE]
        relists_before = service_watcher.relists

        # Move history on in another kind, then compact: the Service watcher's next
        # watch (every second) starts from a version etcd no longer has. (Two writes:
        # a watch from version N starts at N + 1, which a compaction at N + 1 keeps.)
        for tick in ("tick", "tock"):
            uncached.core.create_namespaced_config_map(namespace, {"metadata": {"name": tick}})
        uncached.compact()
        deadline = time.monotonic() + 20
        while service_watcher.relists == relists_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service_watcher.relists > relists_before, "the expired watch made the watcher list again"

        uncached.namenode(namespace, "after-410")
        key = f"{namespace}:after-410"
        deadline = time.monotonic() + 10
        while not HdfsInstance.objects.filter(key=key).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert HdfsInstance.objects.filter(key=key).exists(), "a change after the 410 still reaches the database"

        assert loop.watchers[Kind.SERVICE] is service_watcher, "the same watcher survived the 410"
        assert service_watcher.is_alive()
        # Still one watcher thread per kind: a relist never starts a second one.
        assert sorted(w.kind for w in loop.watchers.values() if w.is_alive()) == sorted(Kind)
        ours = {id(w) for w in loop.watchers.values()}
        strays = [
            t for t in threading.enumerate() if isinstance(t, KindWatcher) and t.stop is loop.stop and id(t) not in ours
        ]
        assert strays == []
    finally:
        loop.stop.set()
        runner.join(timeout=10)
