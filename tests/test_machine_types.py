"""Machine types: offered per access rules and profile, live capacity and quota in the form, and /prespawn's checks.

The cluster tests run against the real apiserver: Nodes are created through the
API with their status written as a kubelet would (tests/test_compute_cluster.py),
pods are bound to them by ``spec.nodeName``, and quotas and limit ranges are real
objects; the sync brings them into the inventory (by watch where the test says
"right after").
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kubernetes import client as k8s

from inventory.lifecycle import Lifecycle
from inventory.models import ClusterNode, GuaranteePolicy, MachineType
from inventory.sync import sync_full_round
from spawning.models import RememberedChoices
from spawning.offers.machine_type import count_field, forget_node_capacities
from spawning.selectors import options_data
from tests import test_compute_cluster
from tests.hubapi import (
    TOKEN,
    hub_client,
    identity,
    make_preset,
    make_profile,
    make_rule,
    offer_namespace,
    our_objects,
    prespawn_body,
)
from tests.pod_rows import store_pods
from tests.test_api_schema import _schema, assert_matches_schema
from tests.test_compute_cluster import _pod, _wait_for
from tests.test_sync_loop import RunningLoop

GPU = "nvidia.com/gpu"
GPUS = count_field(GPU)
TEAM = "team-a"

pytestmark = pytest.mark.django_db

# Nodes made through the API with a kubelet's status, deleted after the test.
make_node = test_compute_cluster.make_node


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture(autouse=True)
def fresh_capacity() -> None:
    # The form's capacity is kept per process for two seconds; another test's nodes must not show.
    forget_node_capacities()


def gpu_type(pool: str = "gpu", slug: str = "gpu", **fields: Any) -> MachineType:
    values: dict[str, Any] = {
        "display_name": "GPU",
        "node_selector": {"pool": pool},
        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        "node_affinity": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": [pool]}]}]
        },
        "extended_resources": {GPU: [0, 1, 2]},
    }
    values.update(fields)
    machine_type = MachineType(slug=slug, **values)
    machine_type.full_clean()
    machine_type.save()
    return machine_type


def _options(username: str = "alice", groups: list[str] | None = None, namespace: str = TEAM) -> dict[str, Any]:
    return options_data(username=username, server_name="", groups=groups or [], default_namespace=namespace)


def _dry_run(namespace: str = TEAM, groups: list[str] | None = None, **options: Any) -> Any:
    body = {**prespawn_body(profile="plain", namespace=namespace, **options), "reply_version": 2, "dry_run": True}
    body["groups"] = groups or []
    return hub_client().post("/prespawn", body, format="json")


def _refusals(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    return response.json()["fields"]


# --- Without a cluster: offered, and checked, per rule and profile -----------------------------


@pytest.fixture
def inventory() -> None:
    make_profile("plain", default=True)
    make_preset("small", default=True, cpu=Decimal("1"), cpu_max=Decimal("8"), mem=2048, mem_max=65536)
    offer_namespace(TEAM)


def test_without_machine_types_the_data_and_reply_are_as_before(inventory) -> None:
    data = _options()
    assert "machine_types" not in data and "namespace_quotas" not in data
    assert "machine_type" not in data["selected"]
    assert 'name="machine_type"' not in hub_client().post("/options", identity(), format="json").json()["html"]
    reply = _dry_run(resources_cpu="2", resources_mem="4096")
    assert reply.status_code == 200, reply.content
    sent = reply.json()
    assert "kubespawner_override" not in sent
    assert sent["resources"]["cpu_guarantee"] == sent["resources"]["cpu_limit"] == 2.0
    assert sent["resources"]["mem_guarantee"] == sent["resources"]["mem_limit"] == "4096M"


def test_machine_types_are_offered_per_rule_with_the_gpu_ceiling(inventory) -> None:
    gpu = gpu_type()
    cpu = MachineType.objects.create(slug="cpu", display_name="CPU", node_selector={"pool": "cpu"}, order=-1)
    make_rule("ml", groups=["ml"], machine_types=[gpu], max_gpus=1)

    offered = {t["id"]: t for t in _options(groups=["ml"])["machine_types"]}
    assert list(offered) == ["cpu", "gpu"]
    assert [c["count"] for c in offered["gpu"]["extended"][0]["counts"]] == [0, 1]
    assert offered["gpu"]["profiles"] == ["plain"]
    # No node of either type is in the inventory: nothing is free, and the form says so.
    assert offered["gpu"]["free_summary"] == "No node of this type is ready now."
    assert [t["id"] for t in _options(username="bob")["machine_types"]] == ["cpu"]

    assert _refusals(_dry_run(machine_type="gpu")) == {"machine_type": ["You may not use the machine type 'gpu'."]}
    refused = _refusals(_dry_run(groups=["ml"], machine_type="gpu", **{GPUS: "2"}))
    assert refused == {GPUS: ["2 GPUs is not a count you may ask for (0, 1)."]}
    refused = _refusals(_dry_run(machine_type="nope"))
    assert refused == {"machine_type": ["There is no machine type 'nope' available."]}
    assert cpu.pk


def test_a_profile_runs_only_on_its_machine_types(inventory) -> None:
    gpu = gpu_type()
    MachineType.objects.create(slug="cpu", display_name="CPU")
    restricted = make_profile("cuda", display_name="CUDA")
    restricted.machine_types.set([gpu])

    offered = {t["id"]: t["profiles"] for t in _options()["machine_types"]}
    assert offered == {"gpu": ["cuda", "plain"], "cpu": ["plain"]}
    body = {**prespawn_body(profile="cuda", namespace=TEAM, machine_type="cpu"), "dry_run": True}
    assert _refusals(hub_client().post("/prespawn", body, format="json")) == {
        "machine_type": ["The profile 'cuda' does not run on the machine type 'cpu'."]
    }
    body = {**prespawn_body(profile="cuda", namespace=TEAM), "dry_run": True}
    assert _refusals(hub_client().post("/prespawn", body, format="json")) == {
        "machine_type": ["The profile 'cuda' runs only on some machine types: choose one."]
    }


def test_the_machine_types_own_bounds_narrow_the_numbers(inventory) -> None:
    gpu_type(min_cpu=Decimal("2"), max_cpu=Decimal("4"), max_mem=8192)
    offered = _options()["machine_types"][0]
    assert offered["cpu"] == {"min": 2.0, "max": 4.0}
    assert offered["mem"] == {"min": 256, "max": 8192}
    refused = _refusals(_dry_run(machine_type="gpu", resources_cpu="6", resources_mem="16384"))
    assert refused == {
        "resources_cpu": ["6 is outside the allowed range 2 to 4 vCPU."],
        "resources_mem": ["16384 is outside the allowed range 256 to 8192 MB."],
    }


def _nodes(count: int, *, start: int, pool: str = "gpu") -> None:
    """Nodes and running pods as the sync stores them."""
    ClusterNode.objects.bulk_create(
        ClusterNode(
            name=f"node-{i}",
            labels={"pool": pool},
            taints=[{"key": GPU, "value": "present", "effect": "NoSchedule"}],
            allocatable={"cpu": 8000, "memory": 64 * 2**30 * 1000, "pods": 110_000, GPU: 4000},
            ready=True,
        )
        for i in range(start, start + count)
    )
    store_pods(
        {
            f"ns:pod-{i}-{j}": (f"node-{i}", {"cpu": 500, "memory": 2**30 * 1000, "pods": 1000, GPU: 1000})
            for i in range(start, start + count)
            for j in range(4)
        }
    )


def test_options_with_machine_types_runs_a_fixed_number_of_queries(inventory) -> None:
    gpu_type()
    _nodes(2, start=0)
    _options()
    forget_node_capacities()
    with CaptureQueriesContext(connection) as small:
        assert _options()["machine_types"][0]["free_summary"].startswith("0 of 8 GPUs free")
    _nodes(50, start=2)
    forget_node_capacities()
    with CaptureQueriesContext(connection) as large:
        assert _options()["machine_types"][0]["free_summary"].startswith("0 of 208 GPUs free")
    assert len(large.captured_queries) == len(small.captured_queries)
    # Within CAPACITY_MAX_AGE_SECONDS the capacity is not read again: only the request's own query.
    with CaptureQueriesContext(connection) as kept:
        _options()
    # (The capacity read is four: nodes, their sums, quotas and limit ranges.)
    assert len(kept.captured_queries) == len(small.captured_queries) - 4 == 1


def test_a_quota_appearing_or_going_changes_the_generation_its_use_does_not() -> None:
    """The snapshot keeps which namespaces have a quota, so /prespawn reads quotas only there."""
    from django.utils import timezone

    from inventory.generation import current_inventory_generation
    from inventory.sync import TARGETS, Outcome, reconcile

    quotas = next(target for target in TARGETS if target.name == "resource_quotas")
    now = timezone.now()

    def quota(used: str) -> dict[str, Any]:
        fields = {"namespace": TEAM, "name": "team", "uid": "u1", "hard": {"pods": "5"}, "used": {"pods": used}}
        return {f"{TEAM}:team": fields}

    before = current_inventory_generation()
    reconcile(target=quotas, desired=quota("0"), keys=None, now=now, outcome=Outcome())
    appeared = current_inventory_generation()
    assert appeared != before
    reconcile(target=quotas, desired=quota("3"), keys=None, now=now, outcome=Outcome())
    assert current_inventory_generation() == appeared
    reconcile(target=quotas, desired={}, keys=None, now=now, outcome=Outcome())
    assert current_inventory_generation() != appeared


def test_the_html_escapes_machine_type_strings(inventory) -> None:
    gpu_type(display_name='<img src=x onerror="alert(1)">', description="<b>big</b>")
    html = hub_client().post("/options", identity(default_namespace=TEAM), format="json").json()["html"]
    assert '<img src=x onerror="alert(1)">' not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "<b>big</b>" not in html


# --- Against the real apiserver -----------------------------------------------------------------


@pytest.fixture
def cluster_inventory(kube, namespace: str) -> str:
    make_profile("plain", default=True)
    make_preset("small", default=True, cpu=Decimal("1"), cpu_max=Decimal("16"), mem=2048, mem_max=131072)
    make_preset("huge", cpu=Decimal("12"), cpu_max=Decimal("16"), mem=8192, mem_max=131072)
    offer_namespace(namespace)
    return namespace


def _pool() -> str:
    return f"gpu-{secrets.token_hex(3)}"


def _gpu_node(make_node, pool: str, *, gpus: int = 8) -> str:
    return make_node(
        pool=pool, cpu="8", memory="64Gi", gpus=gpus, taints=[{"key": GPU, "value": "present", "effect": "NoSchedule"}]
    )


def _gpu_summary(namespace: str) -> str:
    types = _options(namespace=namespace).get("machine_types") or []
    return next(t["free_summary"] for t in types if t["id"] == "gpu")


@pytest.mark.kube
@pytest.mark.django_db(transaction=True)
def test_free_capacity_shows_in_options_right_after_changes(
    cluster_inventory: str, core_v1: k8s.CoreV1Api, make_node
) -> None:
    namespace = cluster_inventory
    pool = _pool()
    node = _gpu_node(make_node, pool)
    gpu_type(pool)
    _pod(core_v1, namespace, "busy", node, cpu="500m", memory="6Gi", gpu="6")
    with RunningLoop() as running:
        _wait_for(lambda: set(running.loop.watchers) >= {"Node", "Pod"}, timeout=15)
        _wait_for(lambda: _gpu_summary(namespace).startswith("2 of 8 GPUs free"), timeout=15)
        assert _gpu_summary(namespace) == (
            "2 of 8 GPUs free; the largest notebook that fits on one node: 2 GPUs, 7.5 vCPU, 58 GB"
        )
        _pod(core_v1, namespace, "more", node, cpu="1", memory="2Gi", gpu="1")
        _wait_for(lambda: _gpu_summary(namespace).startswith("1 of 8 GPUs free"), timeout=5)
        assert _gpu_summary(namespace).endswith("1 GPU, 6.5 vCPU, 56 GB")
        offered = _options(namespace=namespace)["machine_types"][0]
        # The huge preset (12 vCPU) fits no node of the type now; two GPUs do not either.
        assert offered["presets_not_schedulable"] == ["huge"]
        assert {c["count"]: c["fits_now"] for c in offered["extended"][0]["counts"]} == {0: True, 1: True, 2: False}
        html = hub_client().post("/options", identity(default_namespace=namespace), format="json").json()["html"]
        assert "1 of 8 GPUs free" in html
        assert "Cannot start now: Huge" in html

        core_v1.delete_namespaced_pod("more", namespace, grace_period_seconds=0, _preload_content=False)
        _wait_for(lambda: _gpu_summary(namespace).startswith("2 of 8 GPUs free"), timeout=5)


def _quota(core_v1: k8s.CoreV1Api, namespace: str, hard: dict[str, str]) -> None:
    core_v1.create_namespaced_resource_quota(namespace, {"metadata": {"name": "team"}, "spec": {"hard": hard}})
    # As the quota controller records it (none runs in the test cluster).
    core_v1.patch_namespaced_resource_quota_status(
        "team", namespace, {"status": {"hard": hard, "used": {name: "0" for name in hard}}}
    )


def _prespawn(namespace: str, **options: Any) -> Any:
    body = {**prespawn_body(profile="plain", namespace=namespace, **options), "reply_version": 2}
    return hub_client().post("/prespawn", body, format="json")


@pytest.mark.kube
def test_a_request_over_the_namespace_quota_is_refused_and_nothing_is_made(
    cluster_inventory: str, core_v1: k8s.CoreV1Api, make_node
) -> None:
    namespace = cluster_inventory
    pool = _pool()
    _gpu_node(make_node, pool)
    gpu_type(pool)
    _quota(core_v1, namespace, {"requests.cpu": "3", f"requests.{GPU}": "1"})
    sync_full_round()

    quotas = _options(namespace=namespace)["namespace_quotas"]
    assert quotas == [
        {
            "namespace": namespace,
            "summary": f"Quota left in {namespace}: 3 vCPU (requests.cpu), 1 GPU (requests.{GPU})",
            "left": [
                {"resource": "requests.cpu", "left": "3 vCPU"},
                {"resource": f"requests.{GPU}", "left": "1 GPU"},
            ],
        }
    ]
    refused = _refusals(_prespawn(namespace, machine_type="gpu", resources_cpu="4", **{GPUS: "2"}))
    assert set(refused) == {"resources_cpu", GPUS}
    assert all("quota" in reason for reasons in refused.values() for reason in reasons)
    assert refused[GPUS] == [
        f"The quota of the namespace '{namespace}' has 1 GPU of requests.{GPU} left; this notebook needs 2 GPUs."
    ]
    assert our_objects(core_v1, namespace) == []

    # Without a machine type, the namespace's quota holds too.
    refused = _refusals(_prespawn(namespace, resources_cpu="4"))
    assert list(refused) == ["resources_cpu"] and "quota" in refused["resources_cpu"][0]
    assert our_objects(core_v1, namespace) == []
    assert _prespawn(namespace, machine_type="gpu", resources_cpu="2", **{GPUS: "1"}).status_code == 200


@pytest.mark.kube
def test_a_request_breaking_the_limit_range_is_refused(
    cluster_inventory: str, core_v1: k8s.CoreV1Api, make_node
) -> None:
    namespace = cluster_inventory
    pool = _pool()
    _gpu_node(make_node, pool)
    gpu_type(pool, guarantee_policy=GuaranteePolicy.RATIO, guarantee_ratio=Decimal("0.25"))
    core_v1.create_namespaced_limit_range(
        namespace,
        {
            "metadata": {"name": "notebooks"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "max": {"cpu": "6"},
                        "maxLimitRequestRatio": {"memory": "2"},
                        "default": {"ephemeral-storage": "1Gi"},
                    }
                ]
            },
        },
    )
    sync_full_round()

    refused = _refusals(_prespawn(namespace, machine_type="gpu", resources_cpu="7", resources_mem="4096"))
    assert refused == {
        "resources_cpu": [
            f"The LimitRange of the namespace '{namespace}' does not allow this cpu: "
            "limit 7 vCPU is above the maximum 6 vCPU."
        ],
        # A quarter of the memory limit is guaranteed: a limit 4 times the request, above the ratio of 2.
        "resources_mem": [
            f"The LimitRange of the namespace '{namespace}' does not allow this memory: "
            "limit/request 4.000 is above the allowed 2.0."
        ],
    }
    assert our_objects(core_v1, namespace) == []


@pytest.mark.kube
def test_a_request_that_fits_no_node_of_the_type_is_refused(
    cluster_inventory: str, core_v1: k8s.CoreV1Api, make_node
) -> None:
    namespace = cluster_inventory
    pool = _pool()
    node = _gpu_node(make_node, pool, gpus=2)
    gpu_type(pool)
    _pod(core_v1, namespace, "holder", node, cpu="1", memory="1Gi", gpu="1")
    sync_full_round()

    refused = _refusals(_prespawn(namespace, machine_type="gpu", resources_cpu="2", **{GPUS: "2"}))
    assert list(refused) == ["machine_type"]
    (reason,) = refused["machine_type"]
    assert "fits no node of the machine type 'gpu'" in reason
    assert "1 of 2 GPUs free" in reason
    assert our_objects(core_v1, namespace) == []


@pytest.mark.kube
def test_a_gpu_spawn_replies_with_placement_and_extended_resources(
    cluster_inventory: str, core_v1: k8s.CoreV1Api, make_node
) -> None:
    namespace = cluster_inventory
    pool = _pool()
    _gpu_node(make_node, pool)
    gpu_type(pool, guarantee_policy=GuaranteePolicy.EXPLICIT, cpu_guarantee=Decimal("0.5"), mem_guarantee=1024)
    sync_full_round()
    schema = _schema()

    options = hub_client().post("/options", identity(default_namespace=namespace), format="json")
    assert options.status_code == 200
    assert options.json()["machine_types"][0]["free_summary"].startswith("8 of 8 GPUs free")
    assert_matches_schema(schema, "/options", options)

    reply = _prespawn(namespace, machine_type="gpu", resources_cpu="4", resources_mem="8192", **{GPUS: "1"})
    assert reply.status_code == 200, reply.content
    assert_matches_schema(schema, "/prespawn", reply)
    sent = reply.json()
    assert sent["kubespawner_override"] == {
        "node_selector": {"pool": pool},
        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        "node_affinity_required": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": [pool]}]},
        ],
        "extra_resource_guarantees": {GPU: "1"},
        "extra_resource_limits": {GPU: "1"},
        "cpu_guarantee": 0.5,
        "cpu_limit": 4.0,
        "mem_guarantee": "1024M",
        "mem_limit": "8192M",
    }
    assert sent["resources"] == {
        "cpu_guarantee": 0.5,
        "cpu_limit": 4.0,
        "mem_guarantee": "1024M",
        "mem_limit": "8192M",
        "storage_capacity": sent["resources"]["storage_capacity"],
    }
    # Version 1 keeps the original keys only; its resources carry the guarantees below the limits.
    body = {
        **prespawn_body(profile="plain", namespace=namespace, machine_type="gpu", **{GPUS: "1"}),
        "reply_version": 1,
    }
    original = hub_client().post("/prespawn", body, format="json")
    assert original.status_code == 200, original.content
    assert "kubespawner_override" not in original.json()
    assert_matches_schema(schema, "/prespawn", original)


def test_a_retired_machine_type_moves_remembered_choices_and_is_refused_naming_its_successor(inventory) -> None:
    new = MachineType.objects.create(slug="cpu-v2", display_name="CPU v2", node_selector={"pool": "cpu"})
    old = MachineType.objects.create(
        slug="cpu-v1",
        display_name="CPU v1",
        node_selector={"pool": "cpu"},
        lifecycle=Lifecycle.RETIRED,
        lifecycle_message="The old pool is being drained.",
        successor=new,
    )
    MachineType.objects.create(
        slug="big",
        display_name="Big",
        description="Large memory.",
        lifecycle=Lifecycle.DEPRECATED,
        lifecycle_message="Use CPU v2 with more memory.",
    )
    RememberedChoices.objects.create(username="alice", server_name="", choices={"machine_type": old.slug})

    data = _options()
    offered = {t["id"]: t for t in data["machine_types"]}
    assert sorted(offered) == ["big", "cpu-v2"]
    assert offered["big"]["description"] == "Deprecated: Use CPU v2 with more memory. Large memory."
    assert data["selected"]["machine_type"] == "cpu-v2"
    assert [(n["field"], n["old"], n["new"]) for n in data["notices"]] == [("machine_type", "cpu-v1", "cpu-v2")]

    refused = _refusals(_dry_run(machine_type="cpu-v1"))
    assert refused == {"machine_type": ["The machine type 'cpu-v1' is retired; use 'cpu-v2' instead."]}
    # The successor is judged on its own terms (here: no node of it is in the inventory), never as retired.
    successor = _refusals(_dry_run(machine_type="cpu-v2"))
    assert not any("retired" in reason for reasons in successor.values() for reason in reasons)
