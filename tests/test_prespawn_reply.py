"""What /prespawn tells the hub beyond the original's keys: the image, the profile's
extra KubeSpawner overrides, and volumes found by their DNS-safe owner label."""

from __future__ import annotations

import pytest

from kube.names import owner_label_value
from tests.hubapi import TOKEN, hub_client, make_preset, make_profile, make_volume, offer_namespace, prespawn_body

pytestmark = [pytest.mark.kube, pytest.mark.django_db]


@pytest.fixture
def team(kube, namespace: str, settings) -> str:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
    offer_namespace(namespace)
    make_preset("small", default=True)
    return namespace


def test_the_reply_names_the_image_and_the_profiles_overrides(team: str) -> None:
    make_profile(
        "tuned",
        image="example.org/tuned:2",
        kubespawner_override={"image": "ignored/because-image-wins:1", "start_timeout": 600},
    )
    body = {**prespawn_body(profile="tuned", namespace=team), "reply_version": 2}
    response = hub_client().post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["image"] == "example.org/tuned:2"
    assert reply["kubespawner_override"] == {"start_timeout": 600}


def test_a_hub_on_the_original_contract_gets_only_its_keys(team: str) -> None:
    make_profile("tuned", kubespawner_override={"start_timeout": 600})
    response = hub_client().post("/prespawn", prespawn_body(profile="tuned", namespace=team), format="json")
    assert response.status_code == 200, response.content
    original_keys = {
        "namespace",
        "resources",
        "env",
        "labels",
        "serviceAccount",
        "pvc_name",
        "storage_extra_labels",
        "volumes",
        "volumeMounts",
    }
    assert set(response.json()) <= original_keys


def test_a_profile_without_overrides_sends_none(team: str) -> None:
    make_profile("plain")
    body = {**prespawn_body(profile="plain", namespace=team), "reply_version": 2}
    reply = hub_client().post("/prespawn", body, format="json").json()
    assert reply["image"] == "example.org/plain:1"
    assert "kubespawner_override" not in reply


def test_a_volume_labelled_with_the_safe_form_of_an_odd_username_is_the_users(team: str) -> None:
    username = "Jo.Smith@example.org"
    safe = owner_label_value(username)
    assert safe != username, "the raw name is not a valid label value"
    make_profile("plain")
    # Claims with only the owner label (no raw-name annotation), as KubeSpawner 1.1 makes them.
    make_volume(team, "claim-jo", owner="", owner_label=safe, volume_name="work")
    make_volume(team, "claim-other", owner="", owner_label=owner_label_value("someone@else.org"), volume_name="x")

    options = hub_client().post(
        "/options",
        {"username": username, "server_name": "", "pod_name": "jupyter-jo", "default_namespace": team},
        format="json",
    )
    assert [v["id"] for v in options.json()["volumes"]] == [f"{team}:claim-jo"]

    body = prespawn_body(profile="plain", namespace=team, username=username, volume=f"{team}:claim-jo")
    reply = hub_client().post("/prespawn", body, format="json")
    assert reply.status_code == 200, reply.content
    assert reply.json()["pvc_name"] == "claim-jo"

    stolen = prespawn_body(profile="plain", namespace=team, username=username, volume=f"{team}:claim-other")
    refused = hub_client().post("/prespawn", stolen, format="json")
    assert refused.status_code == 400
    assert "volume" in refused.json()["fields"]


def test_a_username_equal_to_another_users_escaped_label_does_not_get_their_volume(team: str) -> None:
    victim_label = owner_label_value("Jo Smith")
    make_profile("plain")
    make_volume(team, "claim-jo", owner="", owner_label=victim_label, volume_name="work")
    impostor = victim_label  # a valid, if odd, JupyterHub username

    options = hub_client().post(
        "/options",
        {"username": impostor, "server_name": "", "pod_name": "jupyter-x", "default_namespace": team},
        format="json",
    )
    assert options.json()["volumes"] == []
    body = prespawn_body(profile="plain", namespace=team, username=impostor, volume=f"{team}:claim-jo")
    refused = hub_client().post("/prespawn", body, format="json")
    assert refused.status_code == 400
    assert "volume" in refused.json()["fields"]


def test_the_raw_owner_annotation_wins_over_the_label(team: str) -> None:
    make_profile("plain")
    make_volume(team, "claim-ann", owner="ann", owner_label=owner_label_value("bob"), volume_name="work")
    for username, expected in (("ann", [f"{team}:claim-ann"]), ("bob", [])):
        options = hub_client().post(
            "/options",
            {"username": username, "server_name": "", "pod_name": "p", "default_namespace": team},
            format="json",
        )
        assert [v["id"] for v in options.json()["volumes"]] == expected, username
