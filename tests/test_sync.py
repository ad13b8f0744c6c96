"""sync_cluster against the real apiserver and PostgreSQL: one full round at a time.

The sync is cluster-wide and other tests make objects too, so every test
asserts on rows keyed by its own fresh namespaces, not on global counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kubernetes import client as k8s

from inventory.models import GafferGraph, HdfsInstance, Namespace, NotebookVolume, ServiceAccount, Source, SyncRound
from inventory.sync import Outcome, WriterLock, sync_full_round
from kube.client import KubeError, KubeGone, reset_api_client
from kube.discovery import Kind, _event_from_line, list_objects

pytestmark = [pytest.mark.kube, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/team/data-reader"


# --- Objects as the original's Helm charts label them ----------------------


def hdfs_service(core: k8s.CoreV1Api, ns: str, instance: str, *, port: int = 8020, component: str = "namenode") -> str:
    name = f"{instance}-namenode"
    core.create_namespaced_service(
        ns,
        {
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/name": "hdfs",
                    "app.kubernetes.io/component": component,
                    "app.kubernetes.io/instance": instance,
                },
            },
            "spec": {"ports": [{"name": "http", "port": 9870}, {"name": "client-rpc", "port": port}]},
        },
    )
    return name


def gaffer_objects(core: k8s.CoreV1Api, ns: str, instance: str, *, description: str = "Road traffic") -> None:
    labels = {"app.kubernetes.io/name": "gaffer", "app.kubernetes.io/instance": instance}
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": f"{instance}-api", "labels": {**labels, "app.kubernetes.io/component": "api"}},
            "spec": {"ports": [{"name": "http", "port": 8080}]},
        },
    )
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": f"{instance}-graph-config",
                "labels": {**labels, "app.kubernetes.io/component": "graph-config"},
            },
            "data": {"graphConfig.json": json.dumps({"graphId": instance, "description": description})},
        },
    )
    core.create_namespaced_config_map(
        ns,
        {
            "metadata": {"name": f"{instance}-schema", "labels": {**labels, "app.kubernetes.io/component": "schema"}},
            "data": {"elements.json": '{"entities": {}}', "types.json": '{"types": {}}'},
        },
    )
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": f"{instance}-store-properties",
                "labels": {**labels, "app.kubernetes.io/component": "store-properties"},
            },
            "stringData": {"store.properties": "accumulo.password=TOP-SECRET-VALUE"},
        },
    )


def service_account(
    core: k8s.CoreV1Api, ns: str, name: str, *, role: str = ROLE, users: str = " alice, bob ,, ", labelled: bool = True
) -> None:
    labels = {"hub.jupyter.org/notebook-service-account": ""} if labelled else {}
    core.create_namespaced_service_account(
        ns,
        {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"eks.amazonaws.com/role-arn": role, "hub.jupyter.org/users": users},
            }
        },
    )


def notebook_pvc(core: k8s.CoreV1Api, ns: str, name: str, *, labelled: bool = True) -> None:
    labels = (
        {
            "app.kubernetes.io/name": "jupyterhub",
            "app.kubernetes.io/component": "notebook-volume",
            "hub.jupyter.org/username": "alice-2esmith",
            "hub.jupyter.org/servername": "gpu",
        }
        if labelled
        else {}
    )
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {
                "name": name,
                "labels": labels,
                # Raw names live in annotations; the volume name only there.
                "annotations": {"hub.jupyter.org/username": "alice.smith", "hub.jupyter.org/volume-name": "work"},
            },
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
        },
    )
    # No pvc-protection controller runs in the test cluster: without this the
    # claim's finalizer would keep its namespace Terminating forever.
    core.patch_namespaced_persistent_volume_claim(name, ns, {"metadata": {"finalizers": None}})


def delete_service(core: k8s.CoreV1Api, ns: str, name: str) -> None:
    core.delete_namespaced_service(name, ns, _preload_content=False)


# --- Tests -------------------------------------------------------------------


def test_one_round_creates_rows_for_every_kind(kube, core_v1: k8s.CoreV1Api, make_namespace) -> None:
    ns = make_namespace()
    hdfs_service(core_v1, ns, "warehouse")
    gaffer_objects(core_v1, ns, "roads")
    service_account(core_v1, ns, "reader")
    notebook_pvc(core_v1, ns, "claim-alice")

    sync_round, outcome = sync_full_round()

    assert sync_round.status == SyncRound.Status.COMPLETED, sync_round.error
    assert sync_round.finished_at is not None
    hdfs = HdfsInstance.objects.get(key=f"{ns}:warehouse")
    assert hdfs.source == Source.DISCOVERED
    assert (hdfs.namespace, hdfs.name) == (ns, "warehouse")
    assert hdfs.observed_url == f"hdfs://warehouse-namenode.{ns}.svc:8020"
    assert hdfs.uid == core_v1.read_namespaced_service("warehouse-namenode", ns).metadata.uid
    assert hdfs.missing_since is None

    graph = GafferGraph.objects.get(key=f"{ns}:roads")
    assert graph.observed_url == f"http://roads-api.{ns}.svc:8080/rest"
    assert graph.api_service == "roads-api"
    assert graph.observed_description == "Road traffic"
    assert graph.graph_config_map == "roads-graph-config"
    assert json.loads(graph.graph_config_files["graphConfig.json"])["graphId"] == "roads"
    assert graph.schema_config_map == "roads-schema"
    assert set(graph.schema_files) == {"elements.json", "types.json"}
    assert graph.store_secret == "roads-store-properties"
    assert graph.available
    # Only the Secret's name: its contents never reach the database.
    stored = json.dumps([graph.labels, graph.annotations, graph.graph_config_files, graph.schema_files])
    assert "TOP-SECRET-VALUE" not in stored

    account = ServiceAccount.objects.get(key=f"{ns}:reader")
    assert account.observed_role_arn == ROLE
    assert account.role_name == "data-reader"
    assert account.observed_users == ["alice", "bob"]

    volume = NotebookVolume.objects.get(key=f"{ns}:claim-alice")
    assert volume.owner_username == "alice.smith"
    assert volume.owner_servername == "gpu"
    assert volume.volume_name == "work"
    assert volume.capacity == "5Gi"
    assert volume.phase == "Pending"

    assert Namespace.objects.filter(name=ns, missing_since__isnull=True).exists()
    mine = {(action, target, key) for action, target, key in outcome.changes if key.startswith(ns)}
    assert mine == {
        ("added", "namespaces", ns),
        ("added", "hdfs", f"{ns}:warehouse"),
        ("added", "gaffer", f"{ns}:roads"),
        ("added", "service_accounts", f"{ns}:reader"),
        ("added", "volumes", f"{ns}:claim-alice"),
    }
    assert sync_round.added >= 5


def test_secrets_are_read_as_metadata_only(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    gaffer_objects(core_v1, namespace, "roads")
    secrets = [s for s in list_objects(Kind.SECRET).objects if s.namespace == namespace]
    assert [s.name for s in secrets] == ["roads-store-properties"]
    assert secrets[0].data == {}
    assert "TOP-SECRET-VALUE" not in repr(secrets[0])


def test_objects_outside_the_selectors_are_ignored(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    hdfs_service(core_v1, namespace, "datanodes", component="datanode")
    # The set-based Service selector also matches this cross pair; it must not count.
    core_v1.create_namespaced_service(
        namespace,
        {
            "metadata": {
                "name": "odd",
                "labels": {"app.kubernetes.io/name": "gaffer", "app.kubernetes.io/component": "namenode"},
            },
            "spec": {"ports": [{"name": "client-rpc", "port": 8020}, {"name": "http", "port": 80}]},
        },
    )
    service_account(core_v1, namespace, "plain", labelled=False)
    notebook_pvc(core_v1, namespace, "unlabelled", labelled=False)

    sync_round, _ = sync_full_round()

    assert sync_round.status == SyncRound.Status.COMPLETED
    assert not HdfsInstance.objects.filter(namespace=namespace).exists()
    assert not GafferGraph.objects.filter(namespace=namespace).exists()
    assert not ServiceAccount.objects.filter(namespace=namespace).exists()
    assert not NotebookVolume.objects.filter(namespace=namespace).exists()
    assert Namespace.objects.filter(name=namespace).exists()


def test_an_annotation_change_updates_the_row(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    service_account(core_v1, namespace, "reader")
    sync_full_round()
    other_role = "arn:aws:iam::123456789012:role/writer"
    core_v1.patch_namespaced_service_account(
        "reader",
        namespace,
        {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": other_role, "hub.jupyter.org/users": ""}}},
    )

    sync_round, outcome = sync_full_round()

    account = ServiceAccount.objects.get(key=f"{namespace}:reader")
    assert account.observed_role_arn == other_role
    assert account.observed_users == []
    assert ("changed", "service_accounts", f"{namespace}:reader") in outcome.changes
    assert sync_round.changed >= 1


def test_delete_marks_missing_and_recreate_brings_back_operator_choices(
    kube, core_v1: k8s.CoreV1Api, namespace: str
) -> None:
    hdfs_service(core_v1, namespace, "warehouse")
    gaffer_objects(core_v1, namespace, "roads")
    service_account(core_v1, namespace, "reader")
    sync_full_round()
    ServiceAccount.objects.filter(key=f"{namespace}:reader").update(
        hidden=True, display_name="Data reader", description="Reads the lake", role_arn_override=ROLE + "-override"
    )
    HdfsInstance.objects.filter(key=f"{namespace}:warehouse").update(display_name="Warehouse", order=3)
    GafferGraph.objects.filter(key=f"{namespace}:roads").update(description="Our roads graph")

    core_v1.delete_namespaced_service_account("reader", namespace, _preload_content=False)
    delete_service(core_v1, namespace, "warehouse-namenode")
    # As in the original, a graph lives as long as its store-properties Secret (or its API
    # Service): gone once both are, even with its ConfigMaps still there.
    delete_service(core_v1, namespace, "roads-api")
    core_v1.delete_namespaced_secret("roads-store-properties", namespace)
    sync_round, outcome = sync_full_round()

    assert sync_round.status == SyncRound.Status.COMPLETED
    assert sync_round.marked_missing >= 3
    account = ServiceAccount.objects.get(key=f"{namespace}:reader")
    assert account.missing_since is not None
    assert (account.hidden, account.display_name, account.description, account.role_arn_override) == (
        True,
        "Data reader",
        "Reads the lake",
        ROLE + "-override",
    )
    hdfs = HdfsInstance.objects.get(key=f"{namespace}:warehouse")
    assert hdfs.missing_since is not None
    assert (hdfs.display_name, hdfs.order) == ("Warehouse", 3)
    graph = GafferGraph.objects.get(key=f"{namespace}:roads")
    assert graph.missing_since is not None
    assert graph.description == "Our roads graph"
    assert not ServiceAccount.objects.offerable().filter(key=f"{namespace}:reader").exists()
    missing_at = account.missing_since

    # A second round while still gone changes nothing, not even the timestamp.
    sync_full_round()
    assert ServiceAccount.objects.get(key=f"{namespace}:reader").missing_since == missing_at

    service_account(core_v1, namespace, "reader", role="arn:aws:iam::123456789012:role/new")
    hdfs_service(core_v1, namespace, "warehouse", port=9000)
    core_v1.create_namespaced_service(
        namespace,
        {
            "metadata": {
                "name": "roads-api",
                "labels": {
                    "app.kubernetes.io/name": "gaffer",
                    "app.kubernetes.io/component": "api",
                    "app.kubernetes.io/instance": "roads",
                },
            },
            "spec": {"ports": [{"name": "http", "port": 8080}]},
        },
    )
    core_v1.create_namespaced_secret(
        namespace,
        {
            "metadata": {
                "name": "roads-store-properties",
                "labels": {
                    "app.kubernetes.io/name": "gaffer",
                    "app.kubernetes.io/component": "store-properties",
                    "app.kubernetes.io/instance": "roads",
                },
            },
            "stringData": {"store.properties": "gaffer.store.class=MapStore"},
        },
    )
    sync_round, outcome = sync_full_round()

    assert sync_round.returned >= 3
    assert {
        ("returned", t, k) for t, k in (("service_accounts", "reader"), ("hdfs", "warehouse"), ("gaffer", "roads"))
    } <= {(a, t, k.split(":", 1)[1]) for a, t, k in outcome.changes if k.startswith(namespace)}
    account = ServiceAccount.objects.get(key=f"{namespace}:reader")
    assert account.missing_since is None
    assert account.observed_role_arn == "arn:aws:iam::123456789012:role/new"
    assert (account.hidden, account.display_name, account.description, account.role_arn_override) == (
        True,
        "Data reader",
        "Reads the lake",
        ROLE + "-override",
    )
    hdfs = HdfsInstance.objects.get(key=f"{namespace}:warehouse")
    assert hdfs.missing_since is None
    assert hdfs.observed_url == f"hdfs://warehouse-namenode.{namespace}.svc:9000"
    assert (hdfs.display_name, hdfs.order) == ("Warehouse", 3)
    graph = GafferGraph.objects.get(key=f"{namespace}:roads")
    assert graph.missing_since is None
    assert graph.description == "Our roads graph"
    assert graph.graph_config_map == "roads-graph-config"
    assert graph.store_secret == "roads-store-properties"


def test_manual_rows_are_never_touched(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    HdfsInstance.objects.create(
        key=f"{namespace}:warehouse", source=Source.MANUAL, name="warehouse", url_override="hdfs://static:8020"
    )
    GafferGraph.objects.create(key="static:graph", source=Source.MANUAL, name="graph", url_override="http://g/rest")
    hdfs_service(core_v1, namespace, "warehouse")

    sync_full_round()

    manual = HdfsInstance.objects.get(key=f"{namespace}:warehouse")
    assert manual.source == Source.MANUAL
    assert (manual.observed_url, manual.uid, manual.namespace) == ("", "", "")
    assert GafferGraph.objects.get(key="static:graph").missing_since is None


def _cluster_snapshot() -> set[tuple[str, str, str, str]]:
    return {
        (kind.value, obj.namespace, obj.name, obj.resource_version)
        for kind in Kind
        for obj in list_objects(kind).objects
    }


def _quiet_pair_of_rounds() -> tuple[SyncRound, Outcome, list[str]]:
    """Two rounds over a cluster that did not change from before the first to after the second.

    Namespaces that earlier tests deleted finish terminating at their own pace
    and legitimately change the inventory; such a window is tried again.
    """
    for _ in range(20):
        before = _cluster_snapshot()
        sync_full_round()
        with CaptureQueriesContext(connection) as queries:
            sync_round, outcome = sync_full_round()
        if _cluster_snapshot() == before:
            return sync_round, outcome, _writes(queries.captured_queries)
        time.sleep(1)
    pytest.fail("the cluster never stayed still for two rounds")


def _writes(queries: list[dict[str, str]]) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and "inventory_syncround" not in q["sql"]
    ]


def test_an_idle_round_writes_no_rows(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    hdfs_service(core_v1, namespace, "warehouse")
    gaffer_objects(core_v1, namespace, "roads")
    service_account(core_v1, namespace, "reader")
    notebook_pvc(core_v1, namespace, "claim-alice")
    sync_round, outcome, writes = _quiet_pair_of_rounds()

    assert sync_round.status == SyncRound.Status.COMPLETED
    assert sync_round.objects_seen >= 6
    assert (sync_round.added, sync_round.changed, sync_round.marked_missing, sync_round.returned) == (0, 0, 0, 0)
    assert sync_round.rows_written == 0
    assert outcome.changes == []
    assert writes == []


def _unreachable_kubeconfig(tmp_path: Path, kube_cluster) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        Path(kube_cluster.kubeconfig).read_text().replace(kube_cluster.server, "https://127.0.0.1:1"),
    )
    return str(path)


def test_a_failed_list_records_a_failed_round_and_marks_nothing_missing(
    kube, core_v1: k8s.CoreV1Api, namespace: str, settings, tmp_path: Path
) -> None:
    service_account(core_v1, namespace, "reader")
    hdfs_service(core_v1, namespace, "warehouse")
    sync_full_round()
    settings.KUBECONFIG = _unreachable_kubeconfig(tmp_path, kube)
    reset_api_client()

    with CaptureQueriesContext(connection) as queries:
        sync_round, _ = sync_full_round()

    assert sync_round.status == SyncRound.Status.FAILED
    assert "cannot be reached" in sync_round.error
    assert sync_round.rows_written == 0
    assert _writes(queries.captured_queries) == []
    assert ServiceAccount.objects.get(key=f"{namespace}:reader").missing_since is None
    assert HdfsInstance.objects.get(key=f"{namespace}:warehouse").missing_since is None
    assert Namespace.objects.get(name=namespace).missing_since is None
    assert SyncRound.objects.latest() == sync_round


def test_a_410_error_event_becomes_kube_gone() -> None:
    # The line a 1.20 apiserver sends when a watch starts from a compacted version.
    line = json.dumps(
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "too old resource version: 1 (705)",
                "reason": "Expired",
                "code": 410,
            },
        }
    )
    with pytest.raises(KubeGone, match="too old resource version"):
        _event_from_line(Kind.SERVICE, line)
    other = line.replace("410", "500")
    with pytest.raises(KubeError) as error:
        _event_from_line(Kind.SERVICE, other)
    assert not isinstance(error.value, KubeGone)


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _sync_once(kube_cluster) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "KUBECONFIG": kube_cluster.kubeconfig,
        "DEBUG": "true",
        "SECRET_KEY": "test-only",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "sync_cluster", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.postgresql  # the writer lock is PostgreSQL's; SQLite has one sync process
@pytest.mark.django_db(transaction=True)
def test_only_one_process_writes(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    assert connection.vendor == "postgresql"
    service_account(core_v1, namespace, "reader")
    first, second = WriterLock(), WriterLock()
    try:
        assert first.acquire()
        assert not second.acquire()
        assert first.still_held()

        blocked = _sync_once(kube)
        assert blocked.returncode == 0, blocked.stderr
        assert "another sync_cluster process is the writer" in blocked.stdout
        assert SyncRound.objects.count() == 0
        assert not ServiceAccount.objects.filter(namespace=namespace).exists()
    finally:
        first.release()
        second.release()
    assert second.acquire()
    second.release()


class RunningSync:
    """``manage.py sync_cluster`` as a separate process, its output collected as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "manage.py", "sync_cluster", "--interval", "3600", "--watch-timeout", "5"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=5)
        return code


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_processes_one_writer(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    service_account(core_v1, namespace, "reader")
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "KUBECONFIG": kube.kubeconfig,
        "DEBUG": "true",
        "SECRET_KEY": "test-only",
    }
    # Two long-running loops: the first to take the lock writes, the other stands by.
    procs = [RunningSync(env), RunningSync(env)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            outputs = [p.output for p in procs]
            if any("Full list completed" in o for o in outputs) and any("standing by" in o for o in outputs):
                break
            time.sleep(0.2)
        time.sleep(1)
    finally:
        codes = [p.stop() for p in procs]
    outputs = [p.output for p in procs]
    assert codes == [0, 0], outputs
    writers = [o for o in outputs if "Full list completed" in o]
    standbys = [o for o in outputs if "another sync_cluster process is the writer: standing by" in o]
    assert len(writers) == 1, outputs
    assert len(standbys) == 1, outputs
    assert "Full list" not in standbys[0]
    assert SyncRound.objects.filter(kind=SyncRound.Kind.FULL).count() == 1
    assert ServiceAccount.objects.filter(key=f"{namespace}:reader").exists()
    assert all("stopping" in o for o in outputs)


def test_a_store_secret_alone_makes_an_offered_graph(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    """The original offered a graph once its store-properties Secret existed, REST API Service or not."""
    labels = {"app.kubernetes.io/name": "gaffer", "app.kubernetes.io/instance": "bare"}
    core_v1.create_namespaced_secret(
        namespace,
        {
            "metadata": {
                "name": "bare-store-properties",
                "labels": {**labels, "app.kubernetes.io/component": "store-properties"},
            },
            "stringData": {"store.properties": "gaffer.store.class=MapStore"},
        },
    )
    sync_full_round()
    graph = GafferGraph.objects.get(key=f"{namespace}:bare")
    assert (graph.name, graph.store_secret, graph.api_service, graph.url) == ("bare", "bare-store-properties", "", "")
    assert graph.is_offered
