"""POST /prespawn checks every choice on the server: a refusal names the field and creates nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from kube.client import reset_api_client
from spawning.models import RememberedChoices, SpawnRecord
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    make_rule,
    make_service_account,
    make_volume,
    offer_namespace,
    our_objects,
    prespawn_body,
)

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def hub():
    return hub_client()


@pytest.fixture
def team(kube, namespace: str) -> str:
    """A real namespace, in the inventory and offered to everyone, with profiles and a preset."""
    offer_namespace(namespace)
    make_profile("plain", default=True)
    make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=True)
    make_preset("small", default=True)
    return namespace


def _refused(hub, core_v1, namespace: str, field: str, body: dict) -> str:
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["error"] == "invalid"
    assert list(payload["fields"]) == [field]
    assert our_objects(core_v1, namespace) == []
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.REFUSED
    assert record.message.startswith(f"{field}: ")
    assert not RememberedChoices.objects.exists()
    return payload["fields"][field][0]


# --- Required fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["username", "server_name", "pod_name", "default_namespace", "user_options", "profile"]
)
def test_every_required_field_is_required(hub, missing: str) -> None:
    body = prespawn_body(profile="plain", namespace="team-a")
    del body[missing]
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400
    assert missing in response.json()["fields"]
    assert not SpawnRecord.objects.exists()


@pytest.mark.parametrize(
    ("user_options", "reason"),
    [
        ({"resources_cpu": ["1", "2"]}, "one value"),
        ({"resources_cpu": {"nested": "1"}}, "string or a number"),
        ({"volume_name": "x" * 1001}, "longer than"),
        ("profile=plain", "dictionary"),
    ],
)
def test_malformed_user_options_are_a_400(hub, user_options, reason: str) -> None:
    body = prespawn_body(profile="plain", namespace="team-a")
    body["user_options"] = user_options
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400
    assert reason in str(response.json()["fields"]["user_options"])


# --- Choices refused, nothing created ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resources_cpu", "4.01"),
        ("resources_cpu", "0.05"),
        ("resources_cpu", "-1"),
        ("resources_mem", "255"),
        ("resources_mem", "16385"),
        ("resources_hdd", "0"),
        ("resources_hdd", "101"),
        ("spark_cpu", "5"),
        ("spark_cpu", "0"),
        ("spark_mem", "100"),
        ("spark_mem", "999999999"),
    ],
)
def test_out_of_bounds_numbers_are_refused(hub, core_v1, team: str, field: str, value: str) -> None:
    reason = _refused(hub, core_v1, team, field, prespawn_body(profile="full", namespace=team, **{field: value}))
    assert "outside the allowed range" in reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("resources_cpu", "abc", "not a number"),
        ("resources_cpu", "NaN", "not a number"),
        ("resources_mem", "Infinity", "not a number"),
        ("resources_mem", "1e", "not a number"),
        ("resources_mem", "512.5", "whole number"),
        ("resources_hdd", "10GB", "not a number"),
        ("spark_mem", "0x200", "not a number"),
    ],
)
def test_non_numbers_are_refused(hub, core_v1, team: str, field: str, value: str, reason: str) -> None:
    assert reason in _refused(
        hub, core_v1, team, field, prespawn_body(profile="plain", namespace=team, **{field: value})
    )


def test_unknown_profile_is_refused(hub, core_v1, team: str) -> None:
    assert "no profile 'nope'" in _refused(hub, core_v1, team, "profile", prespawn_body(profile="nope", namespace=team))


def test_disabled_profile_is_refused(hub, core_v1, team: str) -> None:
    make_profile("retired", enabled=False)
    reason = _refused(hub, core_v1, team, "profile", prespawn_body(profile="retired", namespace=team))
    assert "disabled" in reason


def test_a_profile_for_another_group_is_refused(hub, core_v1, team: str) -> None:
    special = make_profile("special")
    make_rule("insiders", groups=["insiders"], profiles=[special])
    body = {**prespawn_body(profile="special", namespace=team), "groups": ["outsiders"]}
    assert "may not use the profile" in _refused(hub, core_v1, team, "profile", body)


def test_a_disallowed_namespace_is_refused(hub, core_v1, team: str, make_namespace) -> None:
    private = make_namespace()
    offer_namespace(private, users=["bob"])
    body = prespawn_body(profile="plain", namespace=private)
    assert "may not use the namespace" in _refused(hub, core_v1, private, "k8s_namespace", body)


def test_a_namespace_not_offered_at_all_is_refused(hub, core_v1, team: str) -> None:
    body = prespawn_body(profile="plain", namespace="kube-system")
    _refused(hub, core_v1, team, "k8s_namespace", body)
    assert our_objects(core_v1, "kube-system") == []


def test_a_hidden_hdfs_instance_is_refused(hub, core_v1, team: str) -> None:
    make_hdfs(team, "lake", hidden=True)
    body = prespawn_body(profile="full", namespace=team, hdfs=f"{team}:lake")
    assert "no HDFS instance" in _refused(hub, core_v1, team, "hdfs", body)


def test_a_missing_hdfs_instance_is_refused(hub, core_v1, team: str) -> None:
    make_hdfs(team, "lake", missing_since=timezone.now())
    body = prespawn_body(profile="full", namespace=team, hdfs=f"{team}:lake")
    assert "no HDFS instance" in _refused(hub, core_v1, team, "hdfs", body)


def test_hdfs_with_a_profile_that_does_not_enable_it_is_refused(hub, core_v1, team: str) -> None:
    make_hdfs(team, "lake")
    body = prespawn_body(profile="plain", namespace=team, hdfs=f"{team}:lake")
    assert "does not enable HDFS" in _refused(hub, core_v1, team, "hdfs", body)


def test_a_graph_with_a_profile_that_does_not_enable_gaffer_is_refused(hub, core_v1, team: str) -> None:
    make_graph(team, "roads")
    body = prespawn_body(profile="plain", namespace=team, gaffer_graph=f"{team}:roads")
    assert "does not enable Gaffer" in _refused(hub, core_v1, team, "gaffer_graph", body)


def test_a_graph_in_a_rule_for_another_group_is_refused(hub, core_v1, team: str) -> None:
    roads = make_graph(team, "roads")
    make_rule("traffic", groups=["traffic"], gaffer_graphs=[roads])
    body = {**prespawn_body(profile="full", namespace=team, gaffer_graph=f"{team}:roads"), "groups": ["science"]}
    assert "may not use the Gaffer graph" in _refused(hub, core_v1, team, "gaffer_graph", body)


def test_a_service_account_of_another_namespace_is_refused(hub, core_v1, team: str, make_namespace) -> None:
    other = make_namespace()
    offer_namespace(other)
    make_service_account(other, "reader")
    body = prespawn_body(profile="plain", namespace=team, k8s_service_account=f"{other}:reader")
    assert "not in the namespace" in _refused(hub, core_v1, team, "k8s_service_account", body)


def test_a_service_account_not_for_this_user_is_refused(hub, core_v1, team: str) -> None:
    make_service_account(team, "bobs", observed_users=["bob", "carol"])
    body = prespawn_body(profile="plain", namespace=team, k8s_service_account=f"{team}:bobs")
    assert "may not use the service account" in _refused(hub, core_v1, team, "k8s_service_account", body)


def test_another_users_volume_is_refused(hub, core_v1, team: str) -> None:
    make_volume(team, "claim-bob", owner="bob")
    body = prespawn_body(profile="plain", namespace=team, volume=f"{team}:claim-bob")
    assert "may not use the volume" in _refused(hub, core_v1, team, "volume", body)


@pytest.mark.parametrize("name", ["-leading", "trailing.", "has space", "x" * 64, "ünïcode", "a/b"])
def test_an_insane_volume_name_is_refused(hub, core_v1, team: str, name: str) -> None:
    body = prespawn_body(profile="plain", namespace=team, volume_name=name)
    assert "volume name" in _refused(hub, core_v1, team, "volume_name", body)


def test_a_group_ceiling_refuses_2_and_accepts_1(hub, core_v1, team: str) -> None:
    make_rule("students", groups=["students"], max_cpu=1)
    body = {**prespawn_body(profile="plain", namespace=team, resources_cpu="2"), "groups": ["students"]}
    assert "0.1 to 1" in _refused(hub, core_v1, team, "resources_cpu", body)
    SpawnRecord.objects.all().delete()
    body["user_options"]["resources_cpu"] = ["1"]
    accepted = hub.post("/prespawn", body, format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["resources"]["cpu_limit"] == 1.0


# --- Accepted --------------------------------------------------------------------------------------


def test_the_original_hubs_request_provisions_a_plain_profile(hub, core_v1, team: str) -> None:
    """Compatibility mode: form-data lists, empty server name, no groups, as the original hub sends them."""
    body = prespawn_body(
        profile="plain",
        namespace=team,
        resources_cpu="0.5",
        resources_mem="1024",
        resources_hdd="20",
        volume="",
        volume_name="",
        k8s_service_account="",
    )
    assert "groups" not in body
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["namespace"] == team
    assert reply["resources"] == {
        "cpu_guarantee": 0.5,
        "cpu_limit": 0.5,
        "mem_guarantee": "1024M",
        "mem_limit": "1024M",
        "storage_capacity": "20G",
    }
    assert reply["storage_extra_labels"]["hub.jupyter.org/volume-name"] == "default"
    assert "serviceAccount" not in reply
    assert "pvc_name" not in reply
    # A plain profile needs no config objects of ours.
    assert our_objects(core_v1, team) == []

    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.PROVISIONED
    assert (record.username, record.server_name, record.pod_name) == ("alice", "", "jupyter-alice")
    assert record.profile == "plain"
    assert record.namespace == team
    assert record.choices["resources_cpu"] == "0.5"
    assert record.reply == reply
    assert record.duration_ms >= 0
    assert RememberedChoices.objects.get(username="alice", server_name="").choices["resources_mem"] == "1024"


def test_single_values_and_the_default_namespace_are_accepted(hub, team: str) -> None:
    body = {
        "username": "alice",
        "server_name": "",
        "pod_name": "jupyter-alice",
        "default_namespace": team,
        "user_options": {"resources_cpu": 0.5, "resources_mem": 768},
        "profile": "plain",
        "groups": [],
    }
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["namespace"] == team
    assert response.json()["resources"]["mem_limit"] == "768M"


def test_service_account_and_existing_volume_are_passed_to_the_hub(hub, core_v1, team: str) -> None:
    make_service_account(team, "reader", observed_role_arn="arn:aws:iam::123456789012:role/reader")
    make_volume(team, "claim-alice", owner="alice", volume_name="work")
    body = prespawn_body(
        profile="plain", namespace=team, k8s_service_account=f"{team}:reader", volume=f"{team}:claim-alice"
    )
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["serviceAccount"] == "reader"
    assert reply["pvc_name"] == "claim-alice"
    record = SpawnRecord.objects.get()
    assert (record.service_account, record.iam_role_arn) == ("reader", "arn:aws:iam::123456789012:role/reader")


def test_a_cluster_failure_is_a_503_and_still_recorded(hub, team: str, settings, tmp_path: Path) -> None:
    kubeconfig = yaml.safe_load(Path(settings.KUBECONFIG).read_text())
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens there
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(kubeconfig))
    settings.KUBECONFIG = str(broken)
    reset_api_client()
    body = prespawn_body(profile="full", namespace=team, spark_cpu="1", spark_mem="512")
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 503
    assert response.json()["error"] == "cluster_unavailable"
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.FAILED
    assert record.namespace == team
    assert record.message
    assert not RememberedChoices.objects.exists()


def test_a_namespace_gone_from_the_cluster_is_a_503_not_a_500(hub, team: str) -> None:
    offer_namespace("stale-ns")  # in the inventory, but not (any more) in the cluster
    body = prespawn_body(profile="full", namespace="stale-ns", spark_cpu="1", spark_mem="512")
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 503
    assert SpawnRecord.objects.get().result == SpawnRecord.Result.FAILED


def test_numbers_are_checked_against_the_presets_bounds(hub, core_v1, team: str) -> None:
    make_preset("big", cpu=Decimal("8"), cpu_max=Decimal("16"), mem_max=65536)
    body = prespawn_body(profile="plain", namespace=team, resources_cpu="12", resources_mem="65536")
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["resources"]["cpu_limit"] == 12.0


# --- Poststop --------------------------------------------------------------------------------------


def test_poststop_deletes_what_prespawn_made_and_records_it(hub, core_v1, team: str) -> None:
    make_hdfs(team, "lake")
    body = prespawn_body(profile="full", namespace=team, server_name="gpu", hdfs=f"{team}:lake")
    assert hub.post("/prespawn", body, format="json").status_code == 200
    made = our_objects(core_v1, team)
    # HDFS and Spark config maps, and the Spark driver's Service.
    assert len(made) == 3

    response = hub.post("/poststop", {"username": "alice", "server_name": "gpu"}, format="json")
    assert response.status_code == 200, response.content
    deleted = response.json()["deleted"]
    assert sorted(f"{o['kind']}/{o['name']}" for o in deleted) == made
    assert {o["namespace"] for o in deleted} == {team}
    assert our_objects(core_v1, team) == []
    stopped = SpawnRecord.objects.get(result=SpawnRecord.Result.STOPPED)
    assert (stopped.username, stopped.server_name) == ("alice", "gpu")
    assert stopped.cluster_objects == deleted


def test_poststop_needs_the_identity_fields(hub) -> None:
    response = hub.post("/poststop", {"server_name": ""}, format="json")
    assert response.status_code == 400
    assert "username" in response.json()["fields"]
    assert not SpawnRecord.objects.exists()


# --- Every refused field at once ------------------------------------------------------------------------


def test_every_refused_field_is_reported_at_once_and_nothing_is_made(hub, core_v1, team: str) -> None:
    make_hdfs(team, "lake")
    body = prespawn_body(
        profile="plain",
        namespace=team,
        resources_cpu="999",
        resources_mem="512.5",
        volume_name="-bad-",
        hdfs=f"{team}:lake",
        k8s_service_account=f"{team}:nobody",
    )
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert set(fields) == {"resources_cpu", "resources_mem", "volume_name", "hdfs", "k8s_service_account"}
    assert fields["resources_cpu"] == ["999 is outside the allowed range 0.1 to 4 vCPU."]
    assert fields["resources_mem"] == ["512.5 must be a whole number of MB."]
    assert fields["hdfs"] == ["The profile 'plain' does not enable HDFS."]
    assert fields["k8s_service_account"] == [f"There is no service account '{team}:nobody' available."]
    assert our_objects(core_v1, team) == []
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.REFUSED
    # The record names every refusal, in the order they were found.
    assert record.message.split("; ")[0].startswith("resources_cpu: ")
    assert all(f"{field}: " in record.message for field in fields)
    assert not RememberedChoices.objects.exists()


def test_a_refused_profile_does_not_also_refuse_what_depends_on_it(hub, core_v1, team: str) -> None:
    make_hdfs(team, "lake")
    body = prespawn_body(profile="missing", namespace=team, hdfs=f"{team}:lake")
    assert "no profile 'missing'" in _refused(hub, core_v1, team, "profile", body)
