"""Per machine type and per namespace: which nodes match, what is free, and what quota and limit ranges allow."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone

from inventory.capacity import (
    ContainerLimits,
    apply_limit_range,
    compute_snapshot,
    container_limits,
    limit_range_refusals,
    quota_left,
    quota_refusals,
)
from inventory.models import (
    AccessRule,
    ClusterNode,
    GuaranteePolicy,
    LimitRange,
    MachineType,
    NodeUsage,
    PodRequest,
    ResourceQuota,
)
from inventory.scheduling import affinity_matches, node_affinity_errors, tolerates, toleration_errors
from inventory.sync import TARGETS, Outcome, reconcile
from kube.quantity import milli
from tests.pod_rows import remove_pod, store_pod

GI = 2**30 * 1000
GPU = "nvidia.com/gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _node(
    name: str, *, pool: str, cpu: str, memory: str, gpus: int = 0, taints: list[Any] | None = None, **extra: Any
) -> None:
    allocatable = {"cpu": milli(cpu), "memory": milli(memory), "pods": milli(110)}
    if gpus:
        allocatable["nvidia.com/gpu"] = gpus * 1000
    ClusterNode.objects.create(
        name=name,
        labels={"pool": pool},
        taints=taints or [],
        allocatable=allocatable,
        ready=extra.pop("ready", True),
        **extra,
    )


def _pod(key: str, node: str, **requests: int) -> None:
    store_pod(
        key,
        node,
        {"nvidia.com/gpu" if name == "gpu" else name: amount for name, amount in {"pods": 1000, **requests}.items()},
    )


def _gpu_type(**fields: Any) -> MachineType:
    defaults: dict[str, Any] = {
        "slug": "gpu",
        "display_name": "GPU",
        "node_selector": {"pool": "gpu"},
        "tolerations": [GPU_TOLERATION],
        "extended_resources": {"nvidia.com/gpu": [0, 1, 2]},
    }
    return MachineType.objects.create(**{**defaults, **fields})


# --- Pure matching -------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "present"}, True),
        ({"key": "nvidia.com/gpu", "value": "absent"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerations_match_taints_as_in_kubernetes(toleration: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, GPU_TAINT) is expected


def test_node_affinity_terms_are_ored_and_requirements_anded() -> None:
    affinity = {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]},
                    {"key": "gen", "operator": "Gt", "values": ["3"]},
                ]
            },
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
        ]
    }
    assert affinity_matches(affinity, node_name="n1", labels={"zone": "a", "gen": "4"})
    assert not affinity_matches(affinity, node_name="n1", labels={"zone": "a", "gen": "3"})
    assert not affinity_matches(affinity, node_name="n1", labels={"zone": "b", "gen": "9"})
    assert affinity_matches(affinity, node_name="special", labels={})
    assert affinity_matches(None, node_name="x", labels={})


def test_bad_tolerations_and_affinity_are_named() -> None:
    assert toleration_errors([{"key": "a", "operator": "Exists", "value": "v"}]) == [
        "Toleration 1: an Exists toleration has no value."
    ]
    assert toleration_errors([{"key": "a", "effect": "Sometimes"}])[0].startswith("Toleration 1: effect must be")
    assert toleration_errors([{"operator": "Equal", "value": "x"}]) == [
        "Toleration 1: an Equal toleration needs a key (only Exists may leave it empty)."
    ]
    assert toleration_errors({"key": "a"}) == ["Tolerations are a JSON list of objects."]
    assert toleration_errors([GPU_TOLERATION]) == []
    assert node_affinity_errors({"nodeSelectorTerms": [{"matchExpressions": [{"key": "z", "operator": "In"}]}]}) == [
        "Term 1, matchExpressions 1: In needs at least one value."
    ]
    assert node_affinity_errors([{"key": "z"}])[0].startswith("Node affinity is")
    assert node_affinity_errors({}) == []


# --- Quota and limit ranges ------------------------------------------------


def test_quota_left_is_hard_minus_used_and_the_tightest_quota_wins() -> None:
    left = quota_left(
        [
            {
                "hard": {"requests.cpu": "4", "limits.memory": "8Gi", "pods": "10"},
                "used": {"requests.cpu": "1500m", "pods": "3"},
            },
            {
                "hard": {"cpu": "2", "requests.nvidia.com/gpu": "2"},
                "used": {"cpu": "1", "requests.nvidia.com/gpu": "1"},
            },
        ]
    )
    assert left == {
        "requests.cpu": 1000,
        "limits.memory": 8 * GI,
        "pods": 7000,
        "requests.nvidia.com/gpu": 1000,
    }
    refusals = quota_refusals(
        left,
        requests={"cpu": 1500, "memory": GI, "nvidia.com/gpu": 1000},
        limits={"cpu": 2000, "memory": 9 * GI},
    )
    assert refusals == ["limits.memory", "requests.cpu"]
    assert quota_refusals(left, requests={"cpu": 1000}, limits={"memory": GI}) == []


def test_limit_range_defaults_are_applied_as_the_limitranger_does() -> None:
    limits = container_limits(
        [
            [
                {"type": "Pod", "max": {"cpu": "8"}},
                {
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "1Gi"},
                    "defaultRequest": {"cpu": "500m", "memory": "512Mi"},
                    "min": {"cpu": "100m"},
                    "max": {"cpu": "4", "memory": "16Gi"},
                    "maxLimitRequestRatio": {"cpu": "4"},
                },
            ]
        ]
    )
    # Nothing given: both defaults.
    assert apply_limit_range(limits, requests={}, limits={}) == (
        {"cpu": 500, "memory": 512 * 2**20 * 1000},
        {"cpu": 1000, "memory": GI},
    )
    # A limit alone: the request follows the limit (API defaulting), not defaultRequest.
    requests, limits_after = apply_limit_range(limits, requests={}, limits={"cpu": 3000})
    assert requests["cpu"] == 3000 and limits_after["cpu"] == 3000
    assert limit_range_refusals(limits, requests=requests, limits=limits_after) == []
    # A request alone keeps the default limit, which may then sit below the request's ratio.
    requests, limits_after = apply_limit_range(limits, requests={"cpu": 200}, limits={})
    assert limits_after["cpu"] == 1000
    assert limit_range_refusals(limits, requests=requests, limits=limits_after) == [
        ("cpu", "limit/request 5.000 is above the allowed 4.0")
    ]
    assert limit_range_refusals(limits, requests={"cpu": 50, "memory": GI}, limits={"cpu": 5000, "memory": GI}) == [
        ("cpu", "request 50m is below the minimum 100m"),
        ("cpu", "limit 5000m is above the maximum 4000m"),
        ("cpu", "limit/request 100.000 is above the allowed 4.0"),
    ]
    assert container_limits([]) == ContainerLimits()


# --- From the stored rows ------------------------------------------------


@pytest.mark.django_db
def test_capacity_per_machine_type_from_nodes_and_pods(django_assert_num_queries) -> None:
    _node("cpu-1", pool="cpu", cpu="8", memory="32Gi")
    _node("gpu-1", pool="gpu", cpu="8", memory="64Gi", gpus=4, taints=[GPU_TAINT])
    _node("gpu-2", pool="gpu", cpu="16", memory="64Gi", gpus=4, taints=[GPU_TAINT])
    _node("gpu-cordoned", pool="gpu", cpu="16", memory="64Gi", gpus=8, taints=[GPU_TAINT], unschedulable=True)
    _node("gpu-not-ready", pool="gpu", cpu="16", memory="64Gi", gpus=8, taints=[GPU_TAINT], ready=False)
    _pod("ns:a", "gpu-1", cpu=500, memory=4 * GI, gpu=3000)
    _pod("ns:b", "gpu-2", cpu=8000, memory=8 * GI, gpu=1000)
    _pod("ns:c", "cpu-1", cpu=1000)
    _gpu_type(max_cpu=Decimal(12))
    # Without the toleration the GPU nodes' taint keeps it off them.
    _gpu_type(slug="gpu-untolerated", display_name="GPU without toleration", tolerations=[])
    MachineType.objects.create(slug="any", display_name="Anywhere")

    with django_assert_num_queries(5):
        snapshot = compute_snapshot()

    gpu = snapshot.machine_types["gpu"]
    assert gpu.node_names == ["gpu-1", "gpu-2"]
    assert gpu.total == {"nvidia.com/gpu": 8000}
    assert gpu.free == {"nvidia.com/gpu": 4000}
    # gpu-2 has 3 GPUs free but only 2 may be asked for; gpu-1 one.
    assert gpu.largest is not None
    assert (gpu.largest.node, gpu.largest.extended, gpu.largest.cpu, gpu.largest.memory) == (
        "gpu-2",
        {"nvidia.com/gpu": 2000},
        8000,
        56 * GI,
    )
    assert gpu.fits(cpu=7500, memory=50 * GI, extended={"nvidia.com/gpu": 1000})
    assert not gpu.fits(cpu=8500, memory=GI, extended={"nvidia.com/gpu": 1000})
    assert not gpu.fits(cpu=1000, memory=GI, extended={"nvidia.com/gpu": 4000})
    assert snapshot.machine_types["gpu-untolerated"].node_names == []
    assert snapshot.machine_types["any"].node_names == ["cpu-1"]
    assert snapshot.machine_types["any"].largest is not None
    assert snapshot.machine_types["any"].largest.cpu == 7000


@pytest.mark.django_db
def test_the_number_of_queries_does_not_grow_with_nodes_and_pods(django_assert_num_queries) -> None:
    _gpu_type()
    ResourceQuota.objects.create(ref="ns:q", namespace="ns", name="q", hard={"pods": "10"}, used={"pods": "2"})
    LimitRange.objects.create(
        ref="ns:l", namespace="ns", name="l", limits=[{"type": "Container", "default": {"cpu": "1"}}]
    )
    for index in range(40):
        _node(f"n{index}", pool="gpu", cpu="4", memory="16Gi", gpus=1, taints=[GPU_TAINT])
        _pod(f"ns:p{index}", f"n{index}", cpu=1000)
    with django_assert_num_queries(5):
        snapshot = compute_snapshot()
    assert len(snapshot.machine_types["gpu"].nodes) == 40
    assert snapshot.namespace("ns").quota_left == {"pods": 8000}
    assert snapshot.namespace("ns").container_limits.default == {"cpu": 1000}
    assert snapshot.namespace("elsewhere").quota_left == {}


# --- Machine types and rules -------------------------------------------------


def _errors(obj: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        obj.full_clean()
    return raised.value.message_dict


@pytest.mark.django_db
def test_machine_type_validation_names_field_and_reason() -> None:
    bad = MachineType(
        slug="bad",
        display_name="Bad",
        node_selector={"pool": ["gpu"]},
        tolerations=[{"key": "x", "operator": "Maybe"}],
        node_affinity={"required": []},
        extended_resources={"cpu": [1], "nvidia.com/gpu": [1, 1]},
        min_cpu=Decimal(4),
        max_cpu=Decimal(2),
        guarantee_policy=GuaranteePolicy.RATIO,
        guarantee_ratio=Decimal("1.5"),
    )
    errors = _errors(bad)
    assert errors["node_selector"] == ["The value of 'pool' is not a label value (a string of at most 63 characters)."]
    assert errors["tolerations"] == ["Toleration 1: operator must be Equal or Exists."]
    assert errors["node_affinity"][0].startswith("Node affinity is")
    assert errors["extended_resources"] == [
        "'cpu' is not an extended resource name (domain/name, outside kubernetes.io). "
        "The counts of 'nvidia.com/gpu' repeat a number."
    ]
    assert errors["min_cpu"] == ["The minimum (4 vCPU) is above the maximum (2 vCPU)."]
    assert errors["guarantee_ratio"] == ["A guarantee fraction is above 0 and at most 1."]

    explicit = MachineType(
        slug="e", display_name="E", guarantee_policy=GuaranteePolicy.EXPLICIT, min_mem=1024, mem_guarantee=2048
    )
    assert _errors(explicit) == {
        "mem_guarantee": ["Above the minimum memory (1024 MB): a guarantee may not exceed the limit."]
    }
    _gpu_type(
        node_affinity={"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}
    ).full_clean()


def test_guarantees_follow_the_policy() -> None:
    equal = MachineType()
    assert equal.guarantees(cpu_limit=Decimal(2), mem_limit=4096) == (Decimal(2), 4096)
    ratio = MachineType(guarantee_policy=GuaranteePolicy.RATIO, guarantee_ratio=Decimal("0.25"))
    assert ratio.guarantees(cpu_limit=Decimal(2), mem_limit=4096) == (Decimal("0.500"), 1024)
    explicit = MachineType(guarantee_policy=GuaranteePolicy.EXPLICIT, cpu_guarantee=Decimal("0.5"))
    assert explicit.guarantees(cpu_limit=Decimal(2), mem_limit=4096) == (Decimal("0.5"), 4096)
    assert explicit.guarantees(cpu_limit=Decimal("0.25"), mem_limit=4096) == (Decimal("0.25"), 4096)


@pytest.mark.django_db
def test_access_rules_grant_machine_types_with_a_gpu_ceiling_and_profiles_restrict_them() -> None:
    from tests.hubapi import make_profile

    gpu = _gpu_type()
    rule = AccessRule.objects.create(name="gpu users", groups=["ml"], max_gpus=0)
    rule.full_clean()
    rule.machine_types.add(gpu)
    profile = make_profile("torch")
    profile.machine_types.add(gpu)
    assert list(gpu.access_rules.all()) == [rule]
    assert list(gpu.profiles.all()) == [profile]


@pytest.mark.django_db
def test_capacity_changes_leave_the_form_snapshot_alone() -> None:
    """Pods start and stop all day: only rows the spawn form is built from change the generation."""
    from django.utils import timezone

    from inventory.generation import current_inventory_generation
    from inventory.sync import TARGETS, Outcome, reconcile

    targets = {target.name: target for target in TARGETS}
    now = timezone.now()
    reconcile(
        target=targets["namespaces"],
        desired={"team-a": {"uid": "u1", "labels": {}}},
        keys=None,
        now=now,
        outcome=Outcome(),
    )
    before = current_inventory_generation()

    pod = {"node_name": "gpu-1", "requests": {"cpu": 500, "nvidia.com/gpu": 1000}}
    reconcile(target=targets["pods"], desired={"team-a:nb": pod}, keys=None, now=now, outcome=Outcome())
    reconcile(target=targets["pods"], desired={}, keys=None, now=now, outcome=Outcome())
    assert current_inventory_generation() == before

    reconcile(
        target=targets["namespaces"],
        desired={"team-b": {"uid": "u2", "labels": {}}},
        keys=None,
        now=now,
        outcome=Outcome(),
    )
    assert current_inventory_generation() != before


def _kept_sums() -> dict[str, dict[str, int]]:
    return dict(NodeUsage.objects.values_list("node_name", "used"))


def _recounted_sums() -> dict[str, dict[str, int]]:
    counted: dict[str, dict[str, int]] = {}
    for node, resource, total in (
        PodRequest.objects.values_list("node_name", "resource").annotate(total=Sum("amount")).order_by()
    ):
        if total:
            counted.setdefault(node, {})[resource] = int(total)
    return counted


@pytest.mark.django_db
def test_node_sums_move_by_delta_and_a_full_round_recounts_them() -> None:
    store_pod("ns:a", "n1", {"pods": 1000, "cpu": 500})
    store_pod("ns:b", "n1", {"pods": 1000, "cpu": 250, GPU: 1000})
    store_pod("ns:c", "n2", {"pods": 1000, "memory": GI})
    assert _kept_sums() == {"n1": {"cpu": 750, GPU: 1000, "pods": 2000}, "n2": {"memory": GI, "pods": 1000}}
    assert _kept_sums() == _recounted_sums()
    # Made again on another node, with other requests.
    store_pod("ns:b", "n2", {"pods": 1000, "cpu": 100})
    assert _kept_sums() == {"n1": {"cpu": 500, "pods": 1000}, "n2": {"cpu": 100, "memory": GI, "pods": 2000}}
    remove_pod("ns:a")
    assert _kept_sums() == {"n2": {"cpu": 100, "memory": GI, "pods": 2000}} == _recounted_sums()

    # A sum gone wrong (a crash between writes, say) is put right by the next full round.
    NodeUsage.objects.filter(node_name="n2").update(used={"cpu": 1})
    NodeUsage.objects.create(node_name="stale", used={"cpu": 5})
    desired: dict[str, dict[str, Any]] = {}
    for pod, node_name, resource, amount in PodRequest.objects.values_list("pod", "node_name", "resource", "amount"):
        desired.setdefault(pod, {"node_name": node_name, "requests": {}})["requests"][resource] = amount
    pods = next(target for target in TARGETS if target.name == "pods")
    reconcile(target=pods, desired=desired, keys=None, now=timezone.now(), outcome=Outcome())
    assert _kept_sums() == _recounted_sums() == {"n2": {"cpu": 100, "memory": GI, "pods": 2000}}
