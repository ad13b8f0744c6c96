"""A user's last choices for a server are preselected next time, while they are still allowed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from inventory.models import ServiceAccount
from spawning.models import RememberedChoices
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_hdfs,
    make_preset,
    make_profile,
    make_rule,
    make_service_account,
    make_volume,
    offer_namespace,
    prespawn_body,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def hub():
    return hub_client()


def _selected(hub, server_name: str = "", username: str = "alice", **extra) -> dict[str, str]:
    body = {"username": username, "server_name": server_name, "default_namespace": "", **extra}
    response = hub.post("/options", body, format="json")
    assert response.status_code == 200
    return response.json()["selected"]


@pytest.mark.kube
def test_a_successful_spawn_is_preselected_next_time_for_that_server_only(hub, kube, make_namespace) -> None:
    first, second = make_namespace(), make_namespace()
    offer_namespace(first)
    offer_namespace(second)
    make_profile("plain", default=True)
    make_profile("other")
    make_preset("small", default=True)
    make_service_account(second, "reader")
    make_volume(second, "claim-alice", owner="alice", owner_servername="gpu")
    body = prespawn_body(
        profile="other",
        namespace=second,
        server_name="gpu",
        resources_cpu="1.5",
        resources_mem="2048",
        k8s_service_account=f"{second}:reader",
        volume=f"{second}:claim-alice",
        resource_preset="custom",
    )
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content

    selected = _selected(hub, "gpu")
    assert selected["profile"] == "other"
    assert selected["k8s_namespace"] == second
    assert selected["resources_cpu"] == "1.5"
    assert selected["resources_mem"] == "2048"
    assert selected["k8s_service_account"] == f"{second}:reader"
    assert selected["volume"] == f"{second}:claim-alice"
    assert selected["resource_preset"] == "custom"

    # The default server keeps its own (here: default) choices.
    default_server = _selected(hub, "")
    assert default_server["profile"] == "plain"
    assert default_server["resources_cpu"] == "0.25"
    assert default_server["k8s_service_account"] == ""
    # Another user is not given alice's choices.
    assert _selected(hub, "gpu", username="bob")["profile"] == "plain"


@pytest.mark.kube
def test_a_refused_spawn_does_not_overwrite_the_remembered_choices(hub, kube, namespace: str) -> None:
    offer_namespace(namespace)
    make_profile("plain", default=True)
    good = prespawn_body(profile="plain", namespace=namespace, resources_mem="1024")
    assert hub.post("/prespawn", good, format="json").status_code == 200
    bad = prespawn_body(profile="plain", namespace=namespace, resources_mem="999999")
    assert hub.post("/prespawn", bad, format="json").status_code == 400
    assert RememberedChoices.objects.get(username="alice", server_name="").choices["resources_mem"] == "1024"
    assert _selected(hub)["resources_mem"] == "1024"


def _remember(**choices: str) -> None:
    RememberedChoices.objects.create(username="alice", server_name="", choices=choices)


def test_choices_no_longer_allowed_fall_back_to_the_defaults(hub) -> None:
    offer_namespace("team-a")
    offer_namespace("team-b", users=["bob"])
    make_profile("plain", default=True)
    make_profile("retired", enabled=False)
    make_preset("small", default=True, cpu=Decimal("0.5"))
    make_hdfs("team-a", "lake", hidden=True)
    make_service_account("team-a", "reader")
    _remember(
        profile="retired",
        k8s_namespace="team-b",
        hdfs="team-a:lake",
        k8s_service_account="team-a:reader",
        resources_cpu="3",
        resources_mem="not-a-number",
        resource_preset="gone",
    )
    make_rule("students", users=["alice"], max_cpu=1)
    ServiceAccount.objects.filter(key="team-a:reader").update(observed_users=["bob"])
    selected = _selected(hub)
    assert selected["profile"] == "plain"
    assert selected["k8s_namespace"] == "team-a"
    assert selected["hdfs"] == ""
    assert selected["k8s_service_account"] == ""
    assert selected["resources_cpu"] == "0.5"
    assert selected["resources_mem"] == "512"
    assert selected["resource_preset"] == "small"


def test_remembered_account_of_another_namespace_than_the_remembered_one_is_dropped(hub) -> None:
    offer_namespace("team-a")
    offer_namespace("team-b")
    make_profile("plain", default=True)
    make_service_account("team-b", "reader")
    make_volume("team-b", "claim", owner="alice")
    _remember(k8s_namespace="team-a", k8s_service_account="team-b:reader", volume="team-b:claim")
    selected = _selected(hub)
    assert selected["k8s_namespace"] == "team-a"
    assert selected["k8s_service_account"] == ""
    assert selected["volume"] == ""


def test_remembered_choices_win_over_the_hubs_default_namespace(hub) -> None:
    offer_namespace("team-a")
    offer_namespace("team-b")
    make_profile("plain", default=True)
    _remember(k8s_namespace="team-b", volume_name="scratch")
    selected = _selected(hub, default_namespace="team-a")
    assert selected["k8s_namespace"] == "team-b"
    assert selected["volume_name"] == "scratch"
