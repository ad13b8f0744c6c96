"""The hub API and the sync when the apiserver or the database misbehaves, and under a burst of retries.

The apiserver outages run against a private cluster of this module's own (the
shared session cluster is never stopped): its apiserver process is killed and
started again on the same port, etcd and credentials.

Watch expiry (HTTP 410) is covered by the sync's own tests:
tests/test_sync_loop.py::test_an_expired_or_dropped_watch_lists_again_and_keeps_watching (the loop
lists again and keeps one watcher per kind) and tests/test_sync.py::test_a_410_error_event_becomes_kube_gone
(the server's ERROR event becomes KubeGone).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from inventory.models import ServiceAccount, SyncRound
from inventory.sync import sync_full_round
from inventory.sync_loop import KindWatcher, SyncLoop
from kube.client import reset_api_client
from kube.discovery import Kind
from spawning.models import RememberedChoices, SpawnRecord
from tests.hubapi import (
    OUR_OBJECTS,
    TOKEN,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    offer_namespace,
    our_objects,
    prespawn_body,
)
from tests.hubsupport import database_url, start_portal
from tests.plans import create_graph

pytestmark = [pytest.mark.kube]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test-kube.sh"
ROLE = "arn:aws:iam::123456789012:role/notebooks"


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


def _wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"not seen within {timeout:.0f} s: {what}")


class PrivateCluster:
    """A test cluster whose apiserver this module may stop and start."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.kubeconfig = str(state / "kubeconfig")

    def core(self) -> k8s.CoreV1Api:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        return k8s.CoreV1Api(k8s.ApiClient(configuration))

    def apiserver_pid(self) -> int | None:
        pid_file = self.state / "apiserver.pid"
        if not pid_file.exists():
            return None
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def stop_apiserver(self) -> None:
        pid = self.apiserver_pid()
        assert pid is not None, "the private apiserver is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: self.apiserver_pid() is None, timeout=10, what="the apiserver to exit")

    def start_apiserver(self) -> None:
        started = subprocess.run(
            [str(SCRIPT), "restart-apiserver", str(self.state)], capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stdout + started.stderr


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateCluster]:
    # A short path: the cluster's sockets and logs live here.
    state = Path(tempfile.mkdtemp(prefix="op-faults-"))
    started = subprocess.run([str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.fail("The private test cluster could not be started:\n" + started.stdout + started.stderr)
    try:
        yield PrivateCluster(state)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def private(private_cluster: PrivateCluster, settings) -> Iterator[PrivateCluster]:
    """The portal pointed at the private cluster; its apiserver is running again afterwards."""
    settings.KUBECONFIG = private_cluster.kubeconfig
    reset_api_client()
    yield private_cluster
    if private_cluster.apiserver_pid() is None:
        private_cluster.start_apiserver()
    reset_api_client()


def _private_namespace(core: k8s.CoreV1Api) -> str:
    name = f"f-{secrets.token_hex(4)}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def _account(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_service_account(
        namespace,
        {
            "metadata": {
                "name": name,
                "labels": {"hub.jupyter.org/notebook-service-account": "true"},
                "annotations": {"eks.amazonaws.com/role-arn": ROLE},
            }
        },
    )


# --- The apiserver stops -------------------------------------------------------------------------


@pytest.mark.django_db
def test_apiserver_down_options_answers_from_the_database_and_prespawn_refuses_cleanly(
    private: PrivateCluster, settings
) -> None:
    # Rounds every minute: the inventory counts as stale after three missed ones.
    settings.SYNC_INTERVAL = 60
    core = private.core()
    namespace = _private_namespace(core)
    _account(core, namespace, "notebook")
    synced, _ = sync_full_round()
    assert synced.status == SyncRound.Status.COMPLETED
    offer_namespace(namespace)
    make_profile("spark", enable_hdfs=True, enable_spark=True, default=True)
    make_preset("small", default=True)
    make_hdfs(namespace, "hdfs")
    hub = hub_client()
    body = prespawn_body(profile="spark", namespace=namespace, hdfs=f"{namespace}:hdfs")

    private.stop_apiserver()

    failed, _ = sync_full_round()
    assert failed.status == SyncRound.Status.FAILED
    assert "cannot be reached" in failed.error
    # A failed round marks nothing missing.
    assert ServiceAccount.objects.get(key=f"{namespace}:notebook").missing_since is None
    # The outage has lasted long enough for the last good round to be old.
    last_good = timezone.now() - timedelta(minutes=10)
    SyncRound.objects.filter(pk=synced.pk).update(finished_at=last_good)

    options = hub.post(
        "/options", {"username": "alice", "server_name": "", "default_namespace": namespace}, format="json"
    )
    assert options.status_code == 200, options.content
    data = options.json()
    assert [n["name"] for n in data["namespaces"]] == [namespace]
    assert [a["id"] for a in data["service_accounts"]] == [f"{namespace}:notebook"]
    assert data["service_accounts"][0]["role_arn"] == ROLE
    assert data["inventory"] == {"last_synced_at": last_good.isoformat(), "stale": True}
    assert namespace in data["html"]

    started = time.monotonic()
    refused = hub.post("/prespawn", body, format="json")
    took = time.monotonic() - started
    assert refused.status_code == 503, refused.content
    payload = refused.json()
    assert payload["error"] == "cluster_unavailable"
    assert payload["detail"].startswith("The Kubernetes API is unavailable; try again shortly.")
    # Connection refused is answered at once, not after the request timeout.
    assert took < 3.0
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.FAILED
    assert not RememberedChoices.objects.exists()

    private.start_apiserver()
    assert our_objects(private.core(), namespace) == []
    # The same portal process, with no restart, provisions once the apiserver is back.
    provisioned = hub.post("/prespawn", body, format="json")
    assert provisioned.status_code == 200, provisioned.content
    assert our_objects(private.core(), namespace) == [
        "ConfigMap/jhub-hadoop-config-alice",
        "ConfigMap/jhub-spark-config-alice",
        "Service/jupyter-alice",
    ]


class RunningLoop:
    """The sync loop in a thread, as ``sync_cluster`` runs it."""

    def __init__(self, **kwargs: Any) -> None:
        self.lines: list[str] = []
        self.loop = SyncLoop(report=self.lines.append, **kwargs)
        self.thread = threading.Thread(target=self.loop.run, name="faults-sync-loop", daemon=True)

    def __enter__(self) -> RunningLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()


def _watcher_threads(loop: SyncLoop) -> list[str]:
    """Names of the live watch threads this loop started (they share its stop flag)."""
    return sorted(
        t.name for t in threading.enumerate() if isinstance(t, KindWatcher) and t.stop is loop.stop and t.is_alive()
    )


@pytest.mark.django_db(transaction=True)
def test_sync_resumes_by_itself_when_the_apiserver_is_back(private: PrivateCluster) -> None:
    core = private.core()
    namespace = _private_namespace(core)
    _account(core, namespace, "before")
    with RunningLoop(interval=2, watch_timeout=5) as running:
        loop = running.loop
        _wait_for(
            lambda: ServiceAccount.objects.filter(key=f"{namespace}:before").exists(),
            timeout=20,
            what="the first round",
        )
        _wait_for(lambda: len(loop.watchers) == len(Kind), timeout=10, what="one watcher per kind")

        private.stop_apiserver()
        outage = timezone.now()
        _wait_for(
            lambda: SyncRound.objects.filter(started_at__gte=outage, status=SyncRound.Status.FAILED).exists(),
            timeout=15,
            what="a failed round during the outage",
        )
        assert ServiceAccount.objects.get(key=f"{namespace}:before").missing_since is None

        private.start_apiserver()
        back = timezone.now()
        _account(private.core(), namespace, "after")
        _wait_for(
            lambda: ServiceAccount.objects.filter(key=f"{namespace}:after", missing_since__isnull=True).exists(),
            timeout=30,
            what="an account made after the outage",
        )
        _wait_for(
            lambda: SyncRound.objects.filter(
                kind=SyncRound.Kind.FULL, started_at__gte=back, status=SyncRound.Status.COMPLETED
            ).exists(),
            timeout=15,
            what="a completed full round after the outage",
        )
        # Still exactly one watch stream per kind: an outage never doubles them.
        assert all(w.is_alive() for w in loop.watchers.values())
        assert _watcher_threads(loop) == sorted(f"watch-{kind.value}" for kind in Kind)
        assert ServiceAccount.objects.get(key=f"{namespace}:before").missing_since is None
    assert any("failed" in line for line in running.lines)


# --- The database connection is lost -------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_requests_recover_after_the_database_connections_are_killed(kube, namespace: str, tmp_path: Path) -> None:
    offer_namespace(namespace)
    make_profile("plain", default=True)
    make_preset("small", default=True)
    portal, url = start_portal(
        db_url=database_url(connection.settings_dict),
        kubeconfig=kube.kubeconfig,
        # Persistent connections, as deployed: the workers keep theirs between requests.
        env_extra={"OPTIONS_PORTAL_HUB_TOKEN": TOKEN, "DATABASE_CONN_MAX_AGE": "600", "LOG_LEVEL": "WARNING"},
        log_dir=tmp_path,
    )
    headers = {"Authorization": f"token {TOKEN}"}
    options = {"username": "alice", "server_name": "", "default_namespace": namespace}
    spawn = prespawn_body(profile="plain", namespace=namespace)
    try:
        for _ in range(6):
            assert requests.post(f"{url}/options", json=options, headers=headers, timeout=10).status_code == 200

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (terminated,) = cursor.fetchone()
        assert terminated >= 1

        statuses = [
            requests.post(f"{url}/options", json=options, headers=headers, timeout=10).status_code for _ in range(6)
        ]
        statuses += [
            requests.post(f"{url}/prespawn", json=spawn, headers=headers, timeout=10).status_code for _ in range(2)
        ]
        assert statuses == [200] * 8, portal.log()[-3000:]
        portal.check_alive()
        assert SpawnRecord.objects.filter(result=SpawnRecord.Result.PROVISIONED).count() == 2
    finally:
        portal.stop()


# --- A burst of retries --------------------------------------------------------------------------


# Many workers at once on one server: PostgreSQL's advisory lock serialises them across processes.
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_50_prespawns_for_one_server_converges_to_one_set(
    kube, core_v1: k8s.CoreV1Api, make_namespace, tmp_path: Path
) -> None:
    notebooks, graphs = make_namespace(), make_namespace()
    create_graph(core_v1, graphs)
    offer_namespace(notebooks)
    make_profile(
        "full",
        enable_hdfs=True,
        enable_gaffer=True,
        enable_spark=True,
        spark_ingress_host="{{USERNAME}}.spark.example.org",
        spark_ingress_path="/",
    )
    make_preset("small", default=True, spark_cpu_max=4)
    make_hdfs(notebooks, "old-hdfs")
    make_hdfs(notebooks, "new-hdfs")
    make_graph(graphs, "graph")
    # Threaded workers, so that all 50 calls are handled at the same time rather than queued two by two.
    portal, base = start_portal(
        db_url=database_url(connection.settings_dict),
        kubeconfig=kube.kubeconfig,
        env_extra={
            "OPTIONS_PORTAL_HUB_TOKEN": TOKEN,
            "LOG_LEVEL": "WARNING",
            "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 25",
        },
        log_dir=tmp_path,
    )
    try:
        _burst(core_v1, notebooks, graphs, url=f"{base}/prespawn")
    finally:
        portal.stop()


def _burst(core_v1: k8s.CoreV1Api, notebooks: str, graphs: str, *, url: str) -> None:
    headers = {"Authorization": f"token {TOKEN}"}

    # An earlier spawn of the same server, with other choices: a Gaffer graph copied in, another HDFS.
    earlier = prespawn_body(
        profile="full",
        namespace=notebooks,
        server_name="lab",
        hdfs=f"{notebooks}:old-hdfs",
        gaffer_graph=f"{graphs}:graph",
        spark_cpu="1",
    )
    assert requests.post(url, json=earlier, headers=headers, timeout=30).status_code == 200
    assert len(our_objects(core_v1, notebooks)) == 7

    latest = prespawn_body(
        profile="full", namespace=notebooks, server_name="lab", hdfs=f"{notebooks}:new-hdfs", spark_cpu="3"
    )
    barrier = threading.Barrier(50)

    def spawn(_: int) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        response = requests.post(url, json=latest, headers=headers, timeout=60)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(spawn, range(50)))

    assert [status for status, _ in results] == [200] * 50, [r for r in results if r[0] != 200][:3]
    assert all(reply == results[0][1] for _, reply in results)
    assert our_objects(core_v1, notebooks) == [
        "ConfigMap/jhub-hadoop-config-alice-lab",
        "ConfigMap/jhub-spark-config-alice-lab",
        "Ingress/jhub-spark-ui-alice-lab",
        # The driver Service is named after the pod, which the hub names.
        "Service/jupyter-alice",
    ]
    hadoop = core_v1.read_namespaced_config_map("jhub-hadoop-config-alice-lab", notebooks)
    assert f"new-hdfs-namenodes.{notebooks}.svc" in hadoop.data["core-site.xml"]
    assert "old-hdfs" not in hadoop.data["core-site.xml"]
    spark = core_v1.read_namespaced_config_map("jhub-spark-config-alice-lab", notebooks).data["spark-defaults.conf"]
    assert "spark.kubernetes.executor.request.cores 3\n" in spark
    # The Gaffer copies of the earlier spawn are gone, credentials included.
    assert core_v1.list_namespaced_secret(notebooks, label_selector=OUR_OBJECTS).items == []
    remembered = RememberedChoices.objects.get(username="alice", server_name="lab")
    assert remembered.choices["hdfs"] == f"{notebooks}:new-hdfs"
    assert SpawnRecord.objects.filter(result=SpawnRecord.Result.PROVISIONED).count() == 51
