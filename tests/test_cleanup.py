"""/poststop cleanup and the orphan sweep remove exactly our objects, against the real apiserver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from spawning.cleanup import poststop_cleanup, sweep_orphans
from spawning.labels import ANNOTATION_LAST_APPLIED, OUR_OBJECTS_SELECTOR, notebook_labels
from spawning.provisioning import ObjectRef, provision
from tests.plans import basic_plan, create_graph, create_pod, full_plan

pytestmark = pytest.mark.kube

LONG_AGO = "2000-01-01T00:00:00Z"


@pytest.fixture
def networking(kube_cluster) -> Iterator[k8s.NetworkingV1Api]:
    api = kube_cluster.api_client()
    yield k8s.NetworkingV1Api(api)
    api.close()


def _everything(core: k8s.CoreV1Api, networking: k8s.NetworkingV1Api, namespace: str) -> set[ObjectRef]:
    """Every ConfigMap, Secret, Service and Ingress in the namespace, ours or not."""
    found = {
        ObjectRef("ConfigMap", namespace, i.metadata.name) for i in core.list_namespaced_config_map(namespace).items
    }
    found |= {
        ObjectRef("Secret", namespace, i.metadata.name)
        for i in core.list_namespaced_secret(namespace).items
        if i.type != "kubernetes.io/service-account-token"  # made by the controller-manager as it pleases
    }
    found |= {ObjectRef("Service", namespace, i.metadata.name) for i in core.list_namespaced_service(namespace).items}
    found |= {
        ObjectRef("Ingress", namespace, i.metadata.name) for i in networking.list_namespaced_ingress(namespace).items
    }
    return found


def _lookalikes(core: k8s.CoreV1Api, namespace: str) -> set[ObjectRef]:
    """ConfigMaps that resemble ours by name or labels, which no cleanup may touch."""
    ours_but_not_managed = {
        "app.kubernetes.io/name": "jhub-notebook-config",
        "app.kubernetes.io/managed-by": "someone-else",
        "hub.jupyter.org/username": "alice",
        "hub.jupyter.org/servername": "",
    }
    same_labels_no_annotations = {
        "app.kubernetes.io/name": "jhub-notebook-config",
        "app.kubernetes.io/managed-by": "options-portal",
        "hub.jupyter.org/username": "alice",
        "hub.jupyter.org/servername": "",
    }
    bodies = [
        {"metadata": {"name": "jhub-hadoop-config-alice-x"}, "data": {"a": "b"}},
        {
            "metadata": {
                "name": "jhub-spark-config-alice-copy",
                "labels": ours_but_not_managed,
                "annotations": {ANNOTATION_LAST_APPLIED: LONG_AGO},
            }
        },
        {
            # Labelled like alice's objects but annotated for another user (a hash
            # collision, or an operator's hand-made object): not alice's.
            "metadata": {
                "name": "jhub-hadoop-config-alicia",
                "labels": same_labels_no_annotations,
                "annotations": {"optionsportal.io/username": "alicia", "optionsportal.io/servername": ""},
            }
        },
    ]
    for body in bodies:
        core.create_namespaced_config_map(namespace, body)
    return {ObjectRef("ConfigMap", namespace, body["metadata"]["name"]) for body in bodies}


def _age(core: k8s.CoreV1Api, networking: k8s.NetworkingV1Api, refs: list[ObjectRef]) -> None:
    """Pretend we last applied these long ago (a merge patch, as an operator might)."""
    patch = {"metadata": {"annotations": {ANNOTATION_LAST_APPLIED: LONG_AGO}}}
    for ref in refs:
        if ref.kind == "ConfigMap":
            core.patch_namespaced_config_map(ref.name, ref.namespace, patch)
        elif ref.kind == "Secret":
            core.patch_namespaced_secret(ref.name, ref.namespace, patch)
        elif ref.kind == "Service":
            core.patch_namespaced_service(ref.name, ref.namespace, patch, _preload_content=False)
        else:
            networking.patch_namespaced_ingress(ref.name, ref.namespace, patch)


def test_poststop_removes_exactly_that_servers_objects(kube, core_v1, networking, make_namespace) -> None:
    namespace, graph_ns, other_ns = make_namespace(), make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    before = _everything(core_v1, networking, namespace)
    lookalikes = _lookalikes(core_v1, namespace)

    alice = provision(full_plan(namespace, graph_ns))
    alice_gpu = provision(full_plan(namespace, graph_ns, server_name="gpu", pod_name="jupyter-alice-gpu"))
    bob = provision(full_plan(namespace, graph_ns, username="bob", pod_name="jupyter-bob"))
    carol_elsewhere = provision(
        full_plan(other_ns, graph_ns, username="carol", server_name="gpu", pod_name="jupyter-carol-gpu")
    )
    graph_objects = _everything(core_v1, networking, graph_ns)

    deleted = poststop_cleanup(username="alice", server_name="")

    assert set(deleted) == set(alice.objects)
    assert len(alice.objects) == 7
    remaining = _everything(core_v1, networking, namespace)
    assert remaining == before | lookalikes | set(alice_gpu.objects) | set(bob.objects)
    assert set(carol_elsewhere.objects) <= _everything(core_v1, networking, other_ns)
    assert _everything(core_v1, networking, graph_ns) == graph_objects

    # A named server's objects go the same way; calling again finds nothing more.
    deleted_gpu = poststop_cleanup(username="alice", server_name="gpu")
    assert set(deleted_gpu) == set(alice_gpu.objects)
    assert poststop_cleanup(username="alice", server_name="gpu") == []
    assert _everything(core_v1, networking, namespace) == before | lookalikes | set(bob.objects)
    assert set(carol_elsewhere.objects) <= _everything(core_v1, networking, other_ns)


def test_poststop_for_an_odd_username(kube, core_v1, networking, namespace) -> None:
    odd = ("Jo.Smith@Example.ORG" * 4)[:80]
    lookalike = provision(basic_plan(namespace, username="jo-smith-example-org", hdfs=full_plan("x", "x").hdfs))
    made = provision(basic_plan(namespace, username=odd, server_name="Lab 1", hdfs=full_plan("x", "x").hdfs))
    assert poststop_cleanup(username=odd, server_name="Lab 1") == made.objects
    assert set(lookalike.objects) <= _everything(core_v1, networking, namespace)


def test_sweep_removes_only_old_orphans(kube, core_v1, networking, make_namespace) -> None:
    namespace, graph_ns = make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    lookalikes = _lookalikes(core_v1, namespace)

    def spawn(username: str) -> tuple[object, list[ObjectRef]]:
        plan = full_plan(namespace, graph_ns, username=username, pod_name=f"jupyter-{username}")
        return plan, provision(plan).objects

    _, orphan = spawn("gone")  # old, no pod: swept
    running_plan, running = spawn("running")  # old, its pod has our labels: kept
    _, recent = spawn("recent")  # no pod, but applied just now: kept
    _, unlabelled = spawn("unlabelled")  # old, pod without our labels but with the name we were told: kept
    _age(core_v1, networking, orphan + running + unlabelled)
    create_pod(core_v1, namespace, "some-other-pod-name", notebook_labels(running_plan))
    create_pod(core_v1, namespace, "jupyter-unlabelled", {"app": "notebook"})
    before = _everything(core_v1, networking, namespace)

    swept = sweep_orphans(grace_seconds=3600)

    here = {ref for ref in swept if ref.namespace == namespace}
    assert here == set(orphan)
    assert len(orphan) == 7
    assert _everything(core_v1, networking, namespace) == before - set(orphan)
    assert lookalikes | set(running) | set(recent) | set(unlabelled) <= _everything(core_v1, networking, namespace)
    assert {ref for ref in sweep_orphans(grace_seconds=3600) if ref.namespace == namespace} == set()


def test_sweep_counts_a_pod_only_in_the_objects_namespace(kube, core_v1, networking, make_namespace) -> None:
    old_ns, new_ns = make_namespace(), make_namespace()
    old_plan = basic_plan(old_ns, hdfs=full_plan("x", "x").hdfs)
    old = provision(old_plan).objects
    # The same server now runs in another namespace (a hub that never called /poststop).
    new_plan = basic_plan(new_ns, hdfs=full_plan("x", "x").hdfs)
    create_pod(core_v1, new_ns, "jupyter-alice-2", notebook_labels(new_plan))
    _age(core_v1, networking, old)

    swept = sweep_orphans(grace_seconds=60)
    assert {ref for ref in swept if ref.namespace in (old_ns, new_ns)} == set(old)


def test_sweep_grace_period_counts_from_the_last_apply(kube, core_v1, networking, namespace) -> None:
    made = provision(basic_plan(namespace, hdfs=full_plan("x", "x").hdfs)).objects
    assert {r for r in sweep_orphans(grace_seconds=3600) if r.namespace == namespace} == set()
    assert {r for r in sweep_orphans(grace_seconds=-1) if r.namespace == namespace} == set(made)
    assert core_v1.list_namespaced_config_map(namespace, label_selector=OUR_OBJECTS_SELECTOR).items == []
