"""A re-spawn with the same choices against the real apiserver: nothing applied again unless something changed.

Counted two ways: the apiserver's own request counters (``apiserver_request_total``,
verb APPLY) and each object's resourceVersion, which any write moves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest
import requests
from kubernetes import client as k8s

from spawning.labels import ANNOTATION_LAST_APPLIED
from spawning.models import RememberedChoices, SpawnRecord
from spawning.provisioning import ANNOTATION_APPLIED_HASH, ObjectRef, ProvisionResult, provision
from spawning.services import History, _previous_objects
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    offer_namespace,
    prespawn_body,
)
from tests.plans import create_graph, full_plan

_REQUESTS = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


def applies_so_far(cluster) -> float:
    """Every server-side apply the apiserver has answered since it started."""
    return _requests_so_far(cluster, 'verb="APPLY"', 'dry_run=""')


def cluster_wide_lists_so_far(cluster) -> float:
    return _requests_so_far(cluster, 'verb="LIST"', 'scope="cluster"')


def _requests_so_far(cluster, *labels: str) -> float:
    reply = requests.get(
        f"{cluster.server}/metrics",
        headers={"Authorization": f"Bearer {cluster.token}"},
        verify=cluster.ca_file,
        timeout=10,
    )
    reply.raise_for_status()
    return sum(float(value) for found, value in _REQUESTS.findall(reply.text) if all(x in found for x in labels))


@pytest.fixture
def networking(kube_cluster) -> Iterator[k8s.NetworkingV1Api]:
    api = kube_cluster.api_client()
    yield k8s.NetworkingV1Api(api)
    api.close()


def _stored(core: k8s.CoreV1Api, networking: k8s.NetworkingV1Api, ref: ObjectRef):
    read = {
        "ConfigMap": core.read_namespaced_config_map,
        "Secret": core.read_namespaced_secret,
        "Service": core.read_namespaced_service,
        "Ingress": networking.read_namespaced_ingress,
    }[ref.kind]
    return read(ref.name, ref.namespace)


def _versions(core, networking, result: ProvisionResult) -> dict[ObjectRef, str]:
    return {ref: _stored(core, networking, ref).metadata.resource_version for ref in result.objects}


def _again(plan, first: ProvisionResult) -> ProvisionResult:
    """The next spawn of the same server, as prespawn_provision calls it with the last record."""
    return provision(plan, previous=first.objects, recorded=True)


@pytest.fixture
def spawned(kube, core_v1, make_namespace):
    notebooks, graphs = make_namespace(), make_namespace()
    create_graph(core_v1, graphs)
    plan = full_plan(notebooks, graphs)
    first = provision(plan)
    # HDFS and Spark configs, three Gaffer copies, the driver Service and the UI Ingress.
    assert {ref.kind for ref in first.objects} == {"ConfigMap", "Secret", "Service", "Ingress"}
    assert first.unchanged == []
    return plan, first, graphs


@pytest.mark.kube
def test_a_repeated_identical_spawn_applies_nothing(kube, core_v1, networking, spawned) -> None:
    plan, first, _ = spawned
    versions = _versions(core_v1, networking, first)
    applies = applies_so_far(kube)

    again = _again(plan, first)

    assert applies_so_far(kube) == applies
    assert _versions(core_v1, networking, again) == versions
    assert again.objects == first.objects
    assert again.unchanged == first.objects
    assert again.reply == first.reply


@pytest.mark.kube
def test_a_changed_choice_applies_what_it_changes(kube, core_v1, networking, spawned) -> None:
    plan, first, _ = spawned
    versions = _versions(core_v1, networking, first)
    assert plan.spark is not None
    changed = replace(plan, spark=replace(plan.spark, executor_cpu=Decimal("3")))
    applies = applies_so_far(kube)

    again = _again(changed, first)

    spark_config = next(ref for ref in again.objects if ref.name.startswith("jhub-spark-config"))
    assert spark_config not in again.unchanged
    assert (
        "spark.kubernetes.executor.request.cores 3"
        in _stored(core_v1, networking, spark_config).data["spark-defaults.conf"]
    )
    assert _versions(core_v1, networking, again)[spark_config] != versions[spark_config]
    # The rest is as it was, and left alone.
    assert set(again.unchanged) == set(first.objects) - {spark_config}
    assert applies_so_far(kube) == applies + 1


@pytest.mark.kube
def test_an_object_deleted_or_edited_behind_our_back_is_applied_again(kube, core_v1, networking, spawned) -> None:
    plan, first, _ = spawned
    hadoop = next(ref for ref in first.objects if ref.name.startswith("jhub-hadoop-config"))
    store = next(ref for ref in first.objects if ref.kind == "Secret")
    core_v1.delete_namespaced_config_map(hadoop.name, hadoop.namespace)
    # Someone else's edit keeps our annotations, hash included: only the contents tell.
    core_v1.patch_namespaced_secret(store.name, store.namespace, {"data": {"store.properties": "dGFtcGVyZWQ="}})
    original = _stored(core_v1, networking, store)
    assert original.data["store.properties"] == "dGFtcGVyZWQ="

    again = _again(plan, first)

    assert set(again.unchanged) == set(first.objects) - {hadoop, store}
    assert "core-site.xml" in _stored(core_v1, networking, hadoop).data
    assert _stored(core_v1, networking, store).data["store.properties"] != "dGFtcGVyZWQ="


@pytest.mark.kube
def test_a_changed_source_is_copied_again(kube, core_v1, networking, spawned) -> None:
    plan, first, graphs = spawned
    core_v1.patch_namespaced_config_map("graph-graph-config", graphs, {"data": {"graphConfig.json": '{"v": 2}'}})

    again = _again(plan, first)

    copy = next(
        ref for ref in again.objects if ref.kind == "ConfigMap" and ref.name.startswith("jhub-gaffer-graph-config")
    )
    assert copy not in again.unchanged
    assert _stored(core_v1, networking, copy).data == {"graphConfig.json": '{"v": 2}'}
    assert len(again.unchanged) == len(first.objects) - 1


@pytest.mark.kube
def test_an_old_last_applied_stamp_is_renewed(kube, core_v1, networking, spawned, settings) -> None:
    # The sweep removes objects with no notebook pod once the stamp is past its grace period;
    # this spawn's pod does not exist yet, so an ageing stamp must be refreshed.
    plan, first, _ = spawned
    ingress = next(ref for ref in first.objects if ref.kind == "Ingress")
    networking.patch_namespaced_ingress(
        ingress.name,
        ingress.namespace,
        {"metadata": {"annotations": {ANNOTATION_LAST_APPLIED: "2020-01-01T00:00:00Z"}}},
    )
    settings.SWEEP_GRACE_SECONDS = 3600

    again = _again(plan, first)

    assert set(again.unchanged) == set(first.objects) - {ingress}
    stamp = _stored(core_v1, networking, ingress).metadata.annotations[ANNOTATION_LAST_APPLIED]
    assert stamp > "2020-01-01T00:00:00Z"


@pytest.mark.kube
def test_without_a_trustworthy_record_everything_is_applied(kube, core_v1, networking, spawned) -> None:
    plan, first, _ = spawned
    applies = applies_so_far(kube)

    again = provision(plan, previous=first.objects, recorded=False)

    assert again.unchanged == []
    assert applies_so_far(kube) == applies + len(first.objects)


@pytest.mark.kube
def test_every_applied_object_carries_the_hash_of_its_manifest(kube, core_v1, networking, spawned) -> None:
    _, first, _ = spawned
    hashes = {
        ref: _stored(core_v1, networking, ref).metadata.annotations.get(ANNOTATION_APPLIED_HASH)
        for ref in first.objects
    }
    assert all(value and re.fullmatch(r"[0-9a-f]{32}", value) for value in hashes.values()), hashes


# --- Which record is trusted ---------------------------------------------------------------------


def _record(result: str, objects: list[dict[str, str]] | None = None, server_name: str = "lab") -> None:
    SpawnRecord.objects.create(username="alice", server_name=server_name, result=result, cluster_objects=objects or [])


HADOOP = {"kind": "ConfigMap", "namespace": "team", "name": "jhub-hadoop-config-alice-lab"}
SPARK = {"kind": "ConfigMap", "namespace": "team", "name": "jhub-spark-config-alice-lab"}


@pytest.mark.django_db
def test_the_latest_provisioned_record_is_trusted_and_a_refusal_does_not_count() -> None:
    _record(SpawnRecord.Result.PROVISIONED, [HADOOP])
    _record(SpawnRecord.Result.PROVISIONED, [HADOOP, SPARK])
    _record(SpawnRecord.Result.REFUSED)
    _record(SpawnRecord.Result.PROVISIONED, [HADOOP], server_name="other")

    refs, history = _previous_objects("alice", "lab")

    assert history == History.TRUSTED
    assert refs == [ObjectRef(**HADOOP), ObjectRef(**SPARK)]


@pytest.mark.django_db
def test_after_a_failure_the_record_names_what_to_prune_but_is_not_trusted() -> None:
    _record(SpawnRecord.Result.PROVISIONED, [HADOOP, SPARK])
    _record(SpawnRecord.Result.FAILED)

    assert _previous_objects("alice", "lab") == ([ObjectRef(**HADOOP), ObjectRef(**SPARK)], History.UNTRUSTED)


@pytest.mark.django_db
def test_after_a_poststop_nothing_is_left() -> None:
    _record(SpawnRecord.Result.PROVISIONED, [HADOOP])
    _record(SpawnRecord.Result.STOPPED, [HADOOP])

    assert _previous_objects("alice", "lab") == ([], History.TRUSTED)


@pytest.mark.django_db
def test_a_server_never_spawned_is_told_from_one_whose_records_were_pruned() -> None:
    assert _previous_objects("alice", "lab") == ([], History.NEVER)
    _record(SpawnRecord.Result.REFUSED)
    assert _previous_objects("alice", "lab") == ([], History.NEVER)
    # Records are pruned by age; the remembered choices stay, and so may the objects.
    RememberedChoices.objects.create(username="alice", server_name="lab", choices={"profile": "full"})

    assert _previous_objects("alice", "lab") == ([], History.UNTRUSTED)


# --- Through the hub API -------------------------------------------------------------------------


@pytest.mark.kube
@pytest.mark.django_db
def test_a_hub_respawning_the_same_server_makes_no_applies(kube, core_v1, networking, make_namespace, settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
    notebooks, graphs = make_namespace(), make_namespace()
    create_graph(core_v1, graphs)
    offer_namespace(notebooks)
    make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=True)
    make_preset("small", default=True)
    make_hdfs(notebooks, "hdfs")
    make_graph(graphs, "graph")
    body = prespawn_body(
        profile="full",
        namespace=notebooks,
        server_name="lab",
        hdfs=f"{notebooks}:hdfs",
        gaffer_graph=f"{graphs}:graph",
        spark_cpu="1",
    )
    client = hub_client()
    lists = cluster_wide_lists_so_far(kube)
    first = client.post("/prespawn", body, format="json")
    assert first.status_code == 200, first.content
    # Never spawned before: nothing of ours to look for in other namespaces.
    assert cluster_wide_lists_so_far(kube) == lists
    made = SpawnRecord.objects.get(server_name="lab", result=SpawnRecord.Result.PROVISIONED).cluster_objects
    refs = [ObjectRef(**item) for item in made]
    # The Hadoop and Spark configs, the graph's three files copied in, and the Spark driver Service.
    assert len(refs) == 6
    versions = {ref: _stored(core_v1, networking, ref).metadata.resource_version for ref in refs}
    applies = applies_so_far(kube)

    again = client.post("/prespawn", body, format="json")

    assert again.status_code == 200, again.content
    assert again.json() == first.json()
    assert applies_so_far(kube) == applies
    assert {ref: _stored(core_v1, networking, ref).metadata.resource_version for ref in refs} == versions
    latest = SpawnRecord.objects.filter(server_name="lab").latest("created_at", "id")
    assert latest.result == SpawnRecord.Result.PROVISIONED and latest.cluster_objects == made
