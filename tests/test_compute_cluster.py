"""Live capacity against the real apiserver: Nodes, pods bound to them, ResourceQuotas and LimitRanges.

The test cluster has no scheduler, kubelet or quota controller: Nodes are created
through the API with their status written through the status subresource (as a
kubelet does), pods are bound by setting ``spec.nodeName``, and a quota's status
is first written as the quota controller would; from then on the apiserver's own
quota admission counts pods into it. The sync loop runs with a resync far longer
than the test, so every figure after the first comes through a watch.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from inventory.capacity import apply_limit_range, compute_snapshot, limit_range_refusals
from inventory.generation import current_inventory_generation, watched_models
from inventory.models import ClusterNode, LimitRange, MachineType, NodeUsage, PodRequest, ResourceQuota
from inventory.sync import TARGETS, Outcome, reconcile, sync_full_round
from kube.quantity import milli_map
from tests.test_sync_loop import RunningLoop

pytestmark = [pytest.mark.kube, pytest.mark.django_db(transaction=True)]

GPU = "nvidia.com/gpu"
GI = 2**30 * 1000


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"not seen within {timeout} s")


@pytest.fixture
def make_node(core_v1: k8s.CoreV1Api) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(*, pool: str, cpu: str, memory: str, gpus: int = 0, taints: list[dict[str, str]] | None = None) -> str:
        name = f"node-{pool}-{secrets.token_hex(3)}"
        resources = {"cpu": cpu, "memory": memory, "pods": "110", **({GPU: str(gpus)} if gpus else {})}
        core_v1.create_node({"metadata": {"name": name, "labels": {"pool": pool}}, "spec": {"taints": taints or []}})
        made.append(name)
        # A Node's status is the kubelet's to write, through the status subresource.
        core_v1.patch_node_status(
            name,
            {
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                        }
                    ],
                }
            },
        )
        # The apiserver's TaintNodesByCondition admission gives every new Node the
        # not-ready taint; the node lifecycle controller (not run here) lifts it once
        # the node reports Ready, leaving the node's own taints.
        assert "node.kubernetes.io/not-ready" in [t.key for t in core_v1.read_node(name).spec.taints or []]
        core_v1.patch_node(name, {"spec": {"taints": taints or None}})
        return name

    yield make
    for name in made:
        core_v1.delete_node(name, _preload_content=False)


def _pod(core: k8s.CoreV1Api, namespace: str, name: str, node: str, **requests: str) -> None:
    resources = {k.replace("gpu", GPU) if k == "gpu" else k: v for k, v in requests.items()}
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "notebook",
                    "image": "example.org/notebook:1",
                    # Extended resources may not be overcommitted: their limit equals the request.
                    "resources": {
                        "requests": resources,
                        **({"limits": {GPU: resources[GPU]}} if GPU in resources else {}),
                    },
                }
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


def _gpu_type() -> MachineType:
    return MachineType.objects.create(
        slug="gpu",
        display_name="GPU",
        node_selector={"pool": "gpu"},
        tolerations=[{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        extended_resources={GPU: [0, 1, 2]},
    )


def _free_gpus(slug: str = "gpu") -> int:
    return compute_snapshot().machine_types[slug].free.get(GPU, 0) // 1000


def test_free_gpus_follow_pods_starting_and_ending_through_the_watch(
    kube, core_v1: k8s.CoreV1Api, namespace: str, make_node
) -> None:
    taint = {"key": GPU, "value": "present", "effect": "NoSchedule"}
    gpu_node = make_node(pool="gpu", cpu="8", memory="64Gi", gpus=4, taints=[taint])
    cpu_node = make_node(pool="cpu", cpu="4", memory="16Gi")
    _gpu_type()
    MachineType.objects.create(slug="untolerated", display_name="No toleration", node_selector={"pool": "gpu"})
    MachineType.objects.create(slug="cpu", display_name="CPU", node_selector={"pool": "cpu"})
    _pod(core_v1, namespace, "early", gpu_node, cpu="1", memory="4Gi", gpu="1")

    with RunningLoop() as running:
        _wait_for(lambda: ClusterNode.objects.filter(name=gpu_node, ready=True).exists())
        _wait_for(lambda: set(running.loop.watchers) >= {"Node", "Pod"})
        snapshot = compute_snapshot()
        gpu = snapshot.machine_types["gpu"]
        assert gpu.node_names == [gpu_node]
        assert gpu.total == {GPU: 4000}
        _wait_for(lambda: _free_gpus() == 3)
        assert snapshot.machine_types["untolerated"].node_names == []
        assert snapshot.machine_types["cpu"].node_names == [cpu_node]
        full_rounds = running.loop.state.list_versions.copy()

        _pod(core_v1, namespace, "second", gpu_node, cpu="2", memory="8Gi", gpu="2")
        latency = _wait_for(lambda: _free_gpus() == 1, timeout=5)
        largest = compute_snapshot().machine_types["gpu"].largest
        assert largest is not None
        assert (largest.cpu, largest.memory, largest.extended) == (5000, 52 * GI, {GPU: 1000})
        gpu = compute_snapshot().machine_types["gpu"]
        assert gpu.fits(cpu=5000, memory=GI, extended={GPU: 1000})
        assert not gpu.fits(cpu=1000, memory=GI, extended={GPU: 2000})

        # Only that pod's rows were written: the other pod's rows are untouched.
        early_ids = set(PodRequest.objects.filter(pod=f"{namespace}:early").values_list("pk", flat=True))
        core_v1.delete_namespaced_pod("second", namespace, grace_period_seconds=0, _preload_content=False)
        _wait_for(lambda: _free_gpus() == 3, timeout=5)
        assert set(PodRequest.objects.filter(pod=f"{namespace}:early").values_list("pk", flat=True)) == early_ids

        # A pod that finishes stops holding its node, though the object stays.
        pod = core_v1.read_namespaced_pod("early", namespace)
        pod.status.phase = "Succeeded"
        core_v1.replace_namespaced_pod_status("early", namespace, pod)
        _wait_for(lambda: _free_gpus() == 4, timeout=5)
        assert not PodRequest.objects.filter(pod=f"{namespace}:early").exists()

        # Cordoning the node takes it out of every machine type.
        core_v1.patch_node(gpu_node, {"spec": {"unschedulable": True}})
        _wait_for(lambda: compute_snapshot().machine_types["gpu"].nodes == (), timeout=5)
        assert running.loop.state.list_versions == full_rounds, "a full round ran: the figures did not come by watch"
    assert latency < 5


def test_quota_used_and_hard_and_limit_range_defaults_come_from_the_cluster(
    kube, core_v1: k8s.CoreV1Api, namespace: str, make_node
) -> None:
    node = make_node(pool="cpu", cpu="4", memory="16Gi")
    core_v1.create_namespaced_limit_range(
        namespace,
        {
            "metadata": {"name": "notebooks"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "1", "memory": "2Gi"},
                        "max": {"cpu": "4", "memory": "8Gi"},
                    }
                ]
            },
        },
    )
    hard = {"requests.cpu": "4", "limits.memory": "16Gi", "pods": "5", f"requests.{GPU}": "2"}
    core_v1.create_namespaced_resource_quota(namespace, {"metadata": {"name": "team"}, "spec": {"hard": hard}})
    # As the quota controller records it; from here on, quota admission keeps ``used`` up to date.
    core_v1.patch_namespaced_resource_quota_status(
        "team",
        namespace,
        {
            "status": {
                "hard": hard,
                "used": {"requests.cpu": "0", "limits.memory": "0", "pods": "0", f"requests.{GPU}": "0"},
            }
        },
    )
    with RunningLoop():
        _wait_for(lambda: ResourceQuota.objects.filter(ref=f"{namespace}:team").exclude(used={}).exists())
        _wait_for(lambda: LimitRange.objects.filter(ref=f"{namespace}:notebooks").exists())
        compute = compute_snapshot().namespace(namespace)
        assert compute.quota_left == {
            "requests.cpu": 4000,
            "limits.memory": 16 * GI,
            "pods": 5000,
            f"requests.{GPU}": 2000,
        }
        # The apiserver's own defaulting of the LimitRange (defaultRequest from default) is what we read.
        limits = compute.container_limits
        assert limits.default == {"cpu": 1000, "memory": 2 * GI}
        assert limits.default_request == {"cpu": 1000, "memory": 2 * GI}
        assert limits.max == {"cpu": 4000, "memory": 8 * GI}

        # A request above the default limit: predicted here, and refused by the apiserver alike.
        requests, limits_after = apply_limit_range(limits, requests={"cpu": 1500}, limits={})
        assert limit_range_refusals(limits, requests=requests, limits=limits_after) == [
            ("cpu", "request 1500m is above the limit 1000m")
        ]
        with pytest.raises(ApiException) as refused:
            _pod(core_v1, namespace, "too-big", node, cpu="1500m")
        assert refused.value.status == 422 and "must be less than or equal to cpu limit" in refused.value.body

        # A pod asking only for CPU: the LimitRanger gives it the default limits (as apply_limit_range
        # predicts), and quota admission counts it in; both show up here.
        _pod(core_v1, namespace, "worker", node, cpu="500m")
        stored = core_v1.read_namespaced_pod("worker", namespace).spec.containers[0].resources
        predicted = apply_limit_range(limits, requests={"cpu": 500}, limits={})
        assert (milli_map(stored.requests), milli_map(stored.limits)) == predicted

        def left() -> dict[str, int]:
            return dict(compute_snapshot().namespace(namespace).quota_left)

        _wait_for(lambda: left().get("pods") == 4000, timeout=5)
        assert left()["requests.cpu"] == 3500
        assert left()["limits.memory"] == 14 * GI


def _usage_of(nodes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """The per-node sums the sync keeps (NodeUsage), for these nodes."""
    return dict(NodeUsage.objects.filter(node_name__in=nodes).values_list("node_name", "used"))


def _recount_of(nodes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """The same sums counted afresh from every pod's rows, as capacity read them before NodeUsage."""
    sums = (
        PodRequest.objects.filter(node_name__in=nodes)
        .values_list("node_name", "resource")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    counted: dict[str, dict[str, int]] = {}
    for node_name, resource, total in sums:
        if total:
            counted.setdefault(node_name, {})[resource] = int(total)
    return counted


def test_node_sums_follow_pods_created_deleted_and_rebound_and_equal_a_recount(
    kube, core_v1: k8s.CoreV1Api, namespace: str, make_node
) -> None:
    first = make_node(pool="cpu", cpu="8", memory="32Gi")
    second = make_node(pool="cpu", cpu="8", memory="32Gi")
    nodes = (first, second)
    _pod(core_v1, namespace, "a", first, cpu="1", memory="1Gi")
    _pod(core_v1, namespace, "b", first, cpu="500m")
    _pod(core_v1, namespace, "c", second, cpu="2", memory="2Gi")

    with RunningLoop() as running:
        _wait_for(lambda: set(running.loop.watchers) >= {"Node", "Pod"})
        _wait_for(lambda: _usage_of(nodes).get(first, {}).get("pods") == 2000 and second in _usage_of(nodes))
        assert _usage_of(nodes) == {
            first: {"cpu": 1500, "memory": GI, "pods": 2000},
            second: {"cpu": 2000, "memory": 2 * GI, "pods": 1000},
        }
        assert _usage_of(nodes) == _recount_of(nodes)
        # What capacity reads is these sums.
        free = {node.name: node.free for node in compute_snapshot().nodes if node.name in nodes}
        assert free[first]["cpu"] == 6500 and free[second]["memory"] == 30 * GI
        full_rounds = running.loop.state.list_versions.copy()

        # Created through the watch.
        _pod(core_v1, namespace, "d", second, cpu="250m")
        _wait_for(lambda: _usage_of(nodes)[second]["cpu"] == 2250, timeout=5)
        assert _usage_of(nodes) == _recount_of(nodes)

        # Deleted.
        core_v1.delete_namespaced_pod("b", namespace, grace_period_seconds=0, _preload_content=False)
        _wait_for(lambda: _usage_of(nodes)[first]["cpu"] == 1000, timeout=5)
        assert _usage_of(nodes)[first] == {"cpu": 1000, "memory": GI, "pods": 1000}
        assert _usage_of(nodes) == _recount_of(nodes)

        # Rebound: the same pod name made again on the other node (a pod's node never changes in place).
        core_v1.delete_namespaced_pod("a", namespace, grace_period_seconds=0, _preload_content=False)
        _wait_for(lambda: first not in _usage_of(nodes), timeout=5)
        _pod(core_v1, namespace, "a", second, cpu="1", memory="1Gi")
        _wait_for(lambda: _usage_of(nodes)[second]["pods"] == 3000, timeout=5)
        assert _usage_of(nodes) == {second: {"cpu": 3250, "memory": 3 * GI, "pods": 3000}}
        assert _usage_of(nodes) == _recount_of(nodes)

        # A pod that finishes leaves the watch as DELETED and stops holding its node.
        pod = core_v1.read_namespaced_pod("c", namespace)
        pod.status.phase = "Succeeded"
        core_v1.replace_namespaced_pod_status("c", namespace, pod)
        _wait_for(lambda: _usage_of(nodes)[second]["pods"] == 2000, timeout=5)
        assert _usage_of(nodes) == {second: {"cpu": 1250, "memory": GI, "pods": 2000}}
        assert _usage_of(nodes) == _recount_of(nodes)

        assert running.loop.state.list_versions == full_rounds, "a full round ran: the sums did not come by delta"

    # A full round recounts from the listing: the deltas left exactly what it counts.
    by_delta = _usage_of(nodes)
    sync_full_round()
    assert _usage_of(nodes) == by_delta == _recount_of(nodes)

    # Capacity is not what the form is drawn from: writing pod rows and sums leaves its generation alone.
    # (Asserted on these writes alone: other tests' namespaces, deleted meanwhile, move it.)
    generation = current_inventory_generation()
    pods = next(target for target in TARGETS if target.model is PodRequest)
    moved = {"node_name": first, "requests": {"pods": 1000, "cpu": 4000}}
    reconcile(
        target=pods, desired={f"{namespace}:d": moved}, keys={f"{namespace}:d"}, now=timezone.now(), outcome=Outcome()
    )
    assert _usage_of(nodes)[first] == {"pods": 1000, "cpu": 4000}
    assert NodeUsage not in watched_models() and PodRequest not in watched_models()
    assert current_inventory_generation() == generation
