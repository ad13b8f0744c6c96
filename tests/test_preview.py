"""The operator preview: the form a given user would get, for staff only."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from inventory.models import AccessRule, Profile
from spawning.form import render_options_form
from spawning.selectors import options_data
from tests.form_inventory import build_inventory

pytestmark = pytest.mark.django_db

URL = "/admin/preview/"


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(User.objects.create_user("operator", password="x", is_staff=True))
    return client


def test_only_staff_may_preview(client: Client) -> None:
    response = client.get(URL, {"username": "alice"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    client.force_login(User.objects.create_user("alice", password="x"))
    response = client.get(URL, {"username": "alice"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_without_a_username_only_the_question_is_shown(staff_client: Client) -> None:
    response = staff_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert "options-portal-data" not in html
    response = staff_client.get(URL, {"groups": "x"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


def test_the_preview_is_exactly_the_form_the_user_gets(staff_client: Client) -> None:
    build_inventory()
    response = staff_client.get(
        URL, {"username": "alice", "groups": "", "server_name": "lab", "default_namespace": "team-b"}
    )
    assert response.status_code == 200
    expected = render_options_form(
        options_data(username="alice", server_name="lab", groups=[], default_namespace="team-b")
    )
    html = response.content.decode()
    assert expected in html
    assert 'id="spawn_form"' in html
    assert "Server Options" in html


def test_groups_change_what_the_preview_offers(staff_client: Client) -> None:
    build_inventory()
    rule = AccessRule.objects.create(name="Sparkers", groups=["spark-users"])
    rule.profiles.set(Profile.objects.filter(slug="spark"))

    without = staff_client.get(URL, {"username": "alice"}).content.decode()
    with_group = staff_client.get(URL, {"username": "alice", "groups": "data, spark-users ,"}).content.decode()
    assert 'value="spark"' not in without
    assert 'value="spark"' in with_group


def test_start_shows_the_user_options_the_hub_would_receive(staff_client: Client) -> None:
    build_inventory()
    response = staff_client.post(
        f"{URL}?username=alice&default_namespace=team-a",
        {"profile": "python", "resources_cpu": "0.5", "k8s_namespace": "team-a", "volume": ""},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "What the hub would receive as user_options" in html
    shown = response.context["submitted"]
    assert json.loads(shown) == {
        "k8s_namespace": ["team-a"],
        "profile": ["python"],
        "resources_cpu": ["0.5"],
        "volume": [""],
    }


def test_the_admin_index_links_to_the_preview(staff_client: Client) -> None:
    staff_client.logout()
    staff_client.force_login(User.objects.create_superuser("root", password="x"))
    html = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/preview/"' in html
