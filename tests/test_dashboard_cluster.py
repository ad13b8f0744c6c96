"""The running-notebook figures follow notebook pods created and deleted in the real apiserver, by watch."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from dashboard.selectors import NOT_RECORDED, dashboard_get, tally
from inventory.generation import watched_models
from inventory.models import InventoryGeneration, NotebookPod
from inventory.sync import TARGETS, Outcome, reconcile, sync_full_round
from kube import names
from kube.discovery import Kind, KubeObject
from kube.names import POD_LABEL_ROLE, POD_LABEL_SERVER, POD_LABEL_USER, ROLE_NOTEBOOK
from spawning import labels
from spawning.models import SpawnRecord
from tests import test_compute_cluster
from tests.test_compute_cluster import GPU, _wait_for
from tests.test_sync_loop import RunningLoop

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

# Nodes as that module makes them: status by the status subresource, the not-ready taint lifted.
make_node = test_compute_cluster.make_node


def _notebook_pod(
    core: k8s.CoreV1Api, namespace: str, name: str, node: str, *, user: str, image: str, gpus: int
) -> None:
    requests = {"cpu": "500m", "memory": "1Gi", **({GPU: str(gpus)} if gpus else {})}
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "labels": {POD_LABEL_ROLE: ROLE_NOTEBOOK, POD_LABEL_USER: user, POD_LABEL_SERVER: ""},
        },
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [
                {"name": "sidecar", "image": "example.org/proxy:1"},
                {
                    "name": "notebook",
                    "image": image,
                    "resources": {"requests": requests, **({"limits": {GPU: str(gpus)}} if gpus else {})},
                },
            ],
        },
    }
    deadline = time.monotonic() + 15
    while True:
        try:
            core.create_namespaced_pod(namespace, body)
            return
        except ApiException as exc:
            # Pod admission needs the namespace's default service account, made a moment after it.
            if exc.status != 403 or "serviceaccount" not in (exc.body or "") or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _by(namespace: str, attribute: str) -> dict[str, int]:
    """The dashboard's figures for this test's namespace: a reused test apiserver keeps other tests' pods."""
    notebooks = [n for n in dashboard_get().notebooks if n.namespace == namespace]
    return {t.label: t.notebooks for t in tally(notebooks, attribute)}


def test_the_labels_prespawn_gives_make_a_pod_the_watch_keeps_as_a_notebook() -> None:
    given = labels.notebook_labels(SimpleNamespace(username="Jo.Smith@example.org", server_name="gpu"))  # type: ignore[arg-type]
    pod = KubeObject(kind=Kind.POD, namespace="ns", name="jupyter-jo", uid="u", resource_version="1", labels=given)
    assert pod.is_notebook()
    key, value = labels.NOTEBOOK_PODS_SELECTOR.split("=")
    assert given[key] == value
    assert (given[POD_LABEL_USER], given[POD_LABEL_SERVER]) == (names.label_value("Jo.Smith@example.org"), "gpu")


def test_running_notebooks_follow_pods_created_and_deleted(
    kube, core_v1: k8s.CoreV1Api, namespace: str, make_node
) -> None:
    node = make_node(pool="gpu", cpu="16", memory="64Gi", gpus=4)
    SpawnRecord.objects.create(
        username="jo",
        pod_name="jupyter-jo",
        namespace=namespace,
        profile="gpu-lab",
        choices={"machine_type": "a100"},
        result=SpawnRecord.Result.PROVISIONED,
    )
    SpawnRecord.objects.create(
        username="al", pod_name="jupyter-al", namespace=namespace, profile="base", result=SpawnRecord.Result.PROVISIONED
    )
    _notebook_pod(core_v1, namespace, "jupyter-jo", node, user="jo", image="example.org/lab:4", gpus=2)
    # Not a notebook: it holds its node, but is not counted as one.
    core_v1.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "worker", "labels": {POD_LABEL_ROLE: "spark-executor"}},
            "spec": {
                "nodeName": node,
                "automountServiceAccountToken": False,
                "containers": [{"name": "w", "image": "example.org/spark:3"}],
            },
        },
    )

    with RunningLoop() as running:
        _wait_for(lambda: set(running.loop.watchers) >= {"Pod", "Node"}, timeout=15)
        _wait_for(lambda: _by(namespace, "profile") == {"gpu-lab": 1}, timeout=15)
        full_rounds = running.loop.state.list_versions.copy()
        assert _by(namespace, "image") == {"example.org/lab:4": 1}
        assert _by(namespace, "machine_type") == {"a100": 1}
        row = NotebookPod.objects.get(ref=f"{namespace}:jupyter-jo")
        assert (row.username, row.node_name, row.cpu, row.memory, row.gpu) == ("jo", node, 500, 2**30 * 1000, 2000)
        assert row.started_at is not None

        _notebook_pod(core_v1, namespace, "jupyter-al", node, user="al", image="example.org/lab:4", gpus=0)
        _wait_for(lambda: _by(namespace, "profile") == {"gpu-lab": 1, "base": 1}, timeout=5)
        assert _by(namespace, "image") == {"example.org/lab:4": 2}
        assert _by(namespace, "machine_type") == {"a100": 1, NOT_RECORDED: 1}
        usage = {u.resource: u.used for u in dashboard_get().usage}
        assert usage[GPU] == 2.0

        core_v1.delete_namespaced_pod("jupyter-jo", namespace, grace_period_seconds=0, _preload_content=False)
        _wait_for(lambda: _by(namespace, "profile") == {"base": 1}, timeout=5)
        assert _by(namespace, "machine_type") == {NOT_RECORDED: 1}

        # A notebook that finishes is no longer running, though its pod object stays.
        pod = core_v1.read_namespaced_pod("jupyter-al", namespace)
        pod.status.phase = "Succeeded"
        core_v1.replace_namespaced_pod_status("jupyter-al", namespace, pod)
        _wait_for(lambda: _by(namespace, "profile") == {}, timeout=5)
        assert running.loop.state.list_versions == full_rounds, "a full round ran: the figures did not come by watch"
        core_v1.delete_namespaced_pod("worker", namespace, grace_period_seconds=0, _preload_content=False)
    # Notebook rows are capacity, not offers: writing them leaves the spawn form's generation alone.
    # Asserted on the rows' own writes once the loop has stopped: its watches of other tests'
    # namespaces, and of the quotas and limit ranges in them, being deleted meanwhile, move it.
    before = InventoryGeneration.objects.values_list("number", flat=True).first()
    reconcile(
        target=next(target for target in TARGETS if target.model is NotebookPod),
        desired={},
        keys=None,
        now=timezone.now(),
        outcome=Outcome(),
    )
    assert NotebookPod not in watched_models()
    assert InventoryGeneration.objects.values_list("number", flat=True).first() == before


def test_a_full_round_keeps_only_notebook_pods_and_removes_ended_ones(
    kube, core_v1: k8s.CoreV1Api, namespace: str, make_node
) -> None:
    node = make_node(pool="cpu", cpu="8", memory="32Gi")
    _notebook_pod(core_v1, namespace, "jupyter-a", node, user="a", image="example.org/lab:4", gpus=0)
    _notebook_pod(core_v1, namespace, "jupyter-b", node, user="b", image="example.org/lab:5", gpus=0)
    sync_full_round()
    assert set(NotebookPod.objects.filter(namespace=namespace).values_list("name", "image")) == {
        ("jupyter-a", "example.org/lab:4"),
        ("jupyter-b", "example.org/lab:5"),
    }
    core_v1.delete_namespaced_pod("jupyter-a", namespace, grace_period_seconds=0, _preload_content=False)
    _wait_for(lambda: not any(p.metadata.name == "jupyter-a" for p in core_v1.list_namespaced_pod(namespace).items))
    _, outcome = sync_full_round()
    assert list(NotebookPod.objects.filter(namespace=namespace).values_list("name", flat=True)) == ["jupyter-b"]
    assert outcome.by_target["notebook_pods"] == {"marked_missing": 1}
    core_v1.delete_namespaced_pod("jupyter-b", namespace, grace_period_seconds=0, _preload_content=False)
