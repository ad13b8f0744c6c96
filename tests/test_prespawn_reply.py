"""What /prespawn tells the hub beyond the original's keys: the image, the profile's
extra KubeSpawner overrides, and volumes found by their DNS-safe owner label."""

from __future__ import annotations

import pytest

from spawning.names import owner_label_value
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
    response = hub_client().post("/prespawn", prespawn_body(profile="tuned", namespace=team), format="json")
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["image"] == "example.org/tuned:2"
    assert reply["kubespawner_override"] == {"start_timeout": 600}


def test_a_profile_without_overrides_sends_none(team: str) -> None:
    make_profile("plain")
    reply = hub_client().post("/prespawn", prespawn_body(profile="plain", namespace=team), format="json").json()
    assert reply["image"] == "example.org/plain:1"
    assert "kubespawner_override" not in reply


def test_a_volume_labelled_with_the_safe_form_of_an_odd_username_is_the_users(team: str) -> None:
    username = "Jo.Smith@example.org"
    safe = owner_label_value(username)
    assert safe != username, "the raw name is not a valid label value"
    make_profile("plain")
    make_volume(team, "claim-jo", owner=safe, volume_name="work")
    make_volume(team, "claim-other", owner=owner_label_value("someone@else.org"), volume_name="theirs")

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
