"""The hub authenticates with a shared token; without it the API answers 401 and does nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from spawning.models import SpawnRecord
from tests.hubapi import TOKEN, hub_client, identity, make_profile, offer_namespace

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("/options", "/prespawn", "/poststop")


@pytest.fixture(autouse=True)
def hub_token(settings) -> str:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
    settings.OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB = False
    return TOKEN


@pytest.mark.django_db
@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_token_is_401_with_a_json_reason(path: str) -> None:
    response = Client().post(path, identity(), content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("token")
    assert response.json()["error"] == "not_authenticated"
    assert SpawnRecord.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("header", ["token wrong-token", "Bearer wrong-token", f"Basic {TOKEN}", "token", TOKEN])
def test_wrong_token_or_scheme_is_401(path: str, header: str) -> None:
    response = Client().post(path, identity(), content_type="application/json", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"
    assert SpawnRecord.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("keyword", ["token", "Token", "Bearer", "bearer"])
def test_token_and_bearer_are_accepted(keyword: str) -> None:
    make_profile("plain", default=True)
    response = hub_client(keyword=keyword).post("/options", identity(), format="json")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


@pytest.mark.django_db
def test_a_portal_without_a_configured_token_refuses_every_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = None
    response = hub_client(token="").post("/options", identity(), format="json")
    assert response.status_code == 401
    response = hub_client(token="anything").post("/options", identity(), format="json")
    assert response.status_code == 401


@pytest.mark.django_db
def test_anonymous_mode_serves_the_original_tokenless_hub(settings) -> None:
    settings.OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB = True
    make_profile("plain", default=True)
    response = Client().post("/options", identity(), content_type="application/json")
    assert response.status_code == 200
    assert "html" in response.json()
    # A hub that does send a token must still send the right one.
    wrong = Client().post("/options", identity(), content_type="application/json", HTTP_AUTHORIZATION="token nope")
    assert wrong.status_code == 401


@pytest.mark.django_db
def test_csrf_does_not_apply_to_the_hub_api() -> None:
    make_profile("plain", default=True)
    offer_namespace("team-a")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/options", identity(), content_type="application/json", HTTP_AUTHORIZATION=f"token {TOKEN}")
    assert response.status_code == 200
    # A refused prespawn gets its 400 (not a CSRF 403) too.
    refused = client.post(
        "/prespawn",
        {**identity(), "default_namespace": "team-a", "user_options": {}, "profile": "unknown"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"token {TOKEN}",
    )
    assert refused.status_code == 400
    assert "profile" in refused.json()["fields"]


_TOKEN_FILE_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
settings.ALLOWED_HOSTS = ["testserver"]
results = {}
for name, header in (("right", "token from-the-file"), ("env", "token from-the-env"), ("none", None)):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    # No username: a hub that got past authentication gets 400; one that did not gets 401.
    response = Client().post("/options", {}, content_type="application/json", **extra)
    results[name] = response.status_code
print(json.dumps(results))
"""


def test_token_is_read_from_the_file_named_by_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "hub-token"
    token_file.write_text("from-the-file\n")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "optionsportal.settings",
        "OPTIONS_PORTAL_HUB_TOKEN_FILE": str(token_file),
        "OPTIONS_PORTAL_HUB_TOKEN": "from-the-env",
        "OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB": "false",
        "DEBUG": "true",
    }
    probe = subprocess.run(
        [sys.executable, "-c", _TOKEN_FILE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    results = json.loads(probe.stdout.strip().splitlines()[-1])
    # The file wins over the variable, as for every secret.
    assert results == {"right": 400, "env": 401, "none": 401}
