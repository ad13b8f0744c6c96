"""POST /options: the original's request shape, the form data, and a fixed number of queries."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.generation import current_inventory_generation
from inventory.models import (
    Namespace,
    NamespaceOption,
    SyncRound,
)
from spawning.selectors import inventory_freshness, options_data, request_state
from tests.hubapi import (
    TOKEN,
    fill_inventory,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    make_service_account,
    make_volume,
    offer_namespace,
)

pytestmark = pytest.mark.django_db

DATA_KEYS = {
    "username",
    "server_name",
    "profiles",
    "presets",
    "bounds",
    "namespaces",
    "service_accounts",
    "volumes",
    "hdfs",
    "gaffer_graphs",
    "selected",
    "inventory",
    "html",
}


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def hub():
    return hub_client()


def test_missing_username_is_a_clear_400(hub) -> None:
    response = hub.post("/options", {"server_name": ""}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "username" in response.json()["fields"]


def test_absent_server_name_is_a_400_but_an_empty_one_is_the_default_server(hub) -> None:
    make_profile("plain", default=True)
    absent = hub.post("/options", {"username": "alice"}, format="json")
    assert absent.status_code == 400
    assert "server_name" in absent.json()["fields"]
    empty = hub.post("/options", {"username": "alice", "server_name": ""}, format="json")
    assert empty.status_code == 200
    assert empty.json()["server_name"] == ""


@pytest.mark.parametrize("body", [[], "alice", {"username": ["a", "b"], "server_name": ""}, {"username": None}])
def test_malformed_bodies_are_400_not_500(hub, body) -> None:
    response = hub.post("/options", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_the_original_hubs_request_is_served(hub) -> None:
    """The original hub posts exactly these four fields and shows ``html``."""
    make_profile("plain", default=True)
    make_profile("gaffer-pyspark", enable_hdfs=True, enable_gaffer=True, enable_spark=True)
    make_preset("small", default=True)
    offer_namespace("user-alice")
    offer_namespace("team-a")
    body = {"username": "alice", "server_name": "", "pod_name": "jupyter-alice", "default_namespace": "team-a"}
    response = hub.post("/options", body, format="json")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == DATA_KEYS
    radios = re.findall(r'<input[^>]*\bname="profile"[^>]*>', data["html"])
    assert {re.search(r'\bvalue="([^"]*)"', tag).group(1) for tag in radios} == {"plain", "gaffer-pyspark"}
    assert [p["slug"] for p in data["profiles"]] == ["gaffer-pyspark", "plain"]
    assert data["selected"]["profile"] == "plain"
    assert data["selected"]["k8s_namespace"] == "team-a"
    assert data["selected"]["volume_name"] == "default"
    assert {n["name"] for n in data["namespaces"]} == {"user-alice", "team-a"}


def test_form_encoded_requests_are_served_too(hub) -> None:
    make_profile("plain", default=True)
    urlencoded = hub.generic(
        "POST",
        "/options",
        "username=alice&server_name=&groups=team-a&groups=team-b",
        content_type="application/x-www-form-urlencoded",
    )
    assert urlencoded.status_code == 200
    assert urlencoded.json()["username"] == "alice"


def test_form_data_shape_and_defaults(hub) -> None:
    make_profile("plain", default=True, description="Just Python")
    make_preset("small", default=True, cpu=Decimal("0.5"), mem=1024, cpu_max=Decimal("2"), mem_max=4096)
    make_preset("large", cpu=Decimal("4"), mem=8192, cpu_max=Decimal("8"), mem_max=32768)
    offer_namespace("team-a", description="Team A")
    make_service_account(
        "team-a",
        "reader",
        observed_role_arn="arn:aws:iam::123456789012:role/notebooks/reader",
        description="Reads the lake",
    )
    make_volume("team-a", "claim-alice", owner="alice", owner_servername="gpu")
    make_hdfs("team-a", "hdfs", display_name="Lake")
    make_graph("team-a", "roads", observed_description="Road traffic")
    data = hub.post(
        "/options", {"username": "alice", "server_name": "gpu", "default_namespace": "team-a"}, format="json"
    ).json()

    assert data["profiles"] == [
        {
            "slug": "plain",
            "display_name": "Plain",
            "description": "Just Python",
            "image": "example.org/plain:1",
            "default": True,
            "enable_hdfs": False,
            "enable_gaffer": False,
            "enable_spark": False,
        }
    ]
    assert [p["slug"] for p in data["presets"]] == ["large", "small"]
    small = next(p for p in data["presets"] if p["slug"] == "small")
    assert small == {
        "slug": "small",
        "display_name": "Small",
        "description": "",
        "default": True,
        "cpu": 0.5,
        "mem": 1024,
        "spark_cpu": 1.0,
        "spark_mem": 512,
        "disk": 10,
    }
    # Bounds span every preset: lowest minimum to highest maximum.
    assert data["bounds"]["cpu"] == {"min": 0.1, "max": 8.0}
    assert data["bounds"]["mem"] == {"min": 256, "max": 32768}
    assert data["bounds"]["disk"] == {"min": 1, "max": 100}
    assert data["namespaces"] == [{"name": "team-a", "description": "Team A"}]
    assert data["service_accounts"] == [
        {
            "id": "team-a:reader",
            "namespace": "team-a",
            "name": "reader",
            "label": "team-a:reader",
            "description": "Reads the lake",
            "role_arn": "arn:aws:iam::123456789012:role/notebooks/reader",
            "role_name": "reader",
            "role_console_url": "https://console.aws.amazon.com/iam/home#/roles/reader",
        }
    ]
    assert data["volumes"] == [
        {
            "id": "team-a:claim-alice",
            "namespace": "team-a",
            "name": "claim-alice",
            "volume_name": "claim-alice",
            "server_name": "gpu",
            "capacity": "10Gi",
        }
    ]
    assert data["hdfs"] == [
        {"id": "team-a:hdfs", "label": "Lake", "description": "", "url": "hdfs://hdfs-namenodes.team-a.svc:9820"}
    ]
    assert data["gaffer_graphs"] == [
        {
            "id": "team-a:roads",
            "label": "team-a:roads",
            "description": "Road traffic",
            "url": "http://roads-api.team-a.svc:80/rest",
        }
    ]
    assert data["selected"] == {
        "profile": "plain",
        "resource_preset": "small",
        "k8s_namespace": "team-a",
        "volume": "",
        "volume_name": "gpu",
        "k8s_service_account": "",
        "hdfs": "",
        "gaffer_graph": "",
        "resources_cpu": "0.5",
        "resources_mem": "1024",
        "resources_hdd": "10",
        "spark_cpu": "1.0",
        "spark_mem": "512",
    }


def test_builtin_bounds_without_presets(hub) -> None:
    make_profile("plain", default=True)
    data = hub.post("/options", {"username": "alice", "server_name": ""}, format="json").json()
    assert data["presets"] == []
    assert data["bounds"] == {
        "cpu": {"min": 0.1, "max": 4.0},
        "mem": {"min": 256, "max": 16384},
        "spark_cpu": {"min": 0.1, "max": 4.0},
        "spark_mem": {"min": 256, "max": 16384},
        "disk": {"min": 1, "max": 100},
    }
    assert data["selected"]["resources_cpu"] == "0.25"
    assert data["selected"]["resources_mem"] == "512"
    assert data["selected"]["resources_hdd"] == "10"


def test_hub_default_namespace_is_preselected_only_when_offered(hub) -> None:
    make_profile("plain", default=True)
    offer_namespace("team-a")
    offer_namespace("team-b")
    body = {"username": "alice", "server_name": "", "default_namespace": "team-b"}
    assert hub.post("/options", body, format="json").json()["selected"]["k8s_namespace"] == "team-b"
    body["default_namespace"] = "kube-system"
    assert hub.post("/options", body, format="json").json()["selected"]["k8s_namespace"] == "team-a"


def test_templated_namespaces_are_resolved_and_must_exist(hub) -> None:
    make_profile("plain", default=True)
    NamespaceOption.objects.create(pattern="user-{username}")
    NamespaceOption.objects.create(pattern="absent")
    Namespace.objects.create(name="user-alice")
    Namespace.objects.create(name="user-bob")
    Namespace.objects.create(name="absent", missing_since=timezone.now())
    alice = hub.post("/options", {"username": "alice", "server_name": ""}, format="json").json()
    assert [n["name"] for n in alice["namespaces"]] == ["user-alice"]
    # A username that is not DNS-safe maps to its own (hashed) name, never to another user's.
    odd = hub.post("/options", {"username": "Bob", "server_name": ""}, format="json").json()
    assert odd["namespaces"] == []


def test_inventory_freshness_is_reported(hub, settings) -> None:
    settings.SYNC_INTERVAL = 300
    make_profile("plain", default=True)
    never = hub.post("/options", {"username": "alice", "server_name": ""}, format="json").json()
    assert never["inventory"] == {"last_synced_at": None, "stale": True}
    finished = timezone.now() - timedelta(seconds=30)
    SyncRound.objects.create(status=SyncRound.Status.COMPLETED, started_at=finished, finished_at=finished)
    fresh = hub.post("/options", {"username": "alice", "server_name": ""}, format="json").json()
    assert fresh["inventory"]["stale"] is False
    assert fresh["inventory"]["last_synced_at"] == finished.isoformat()
    SyncRound.objects.all().update(finished_at=timezone.now() - timedelta(hours=2))
    old = hub.post("/options", {"username": "alice", "server_name": ""}, format="json").json()
    assert old["inventory"]["stale"] is True


def test_strings_are_escaped_in_the_html(hub) -> None:
    make_profile("plain", default=True, display_name='</script><script>alert("x")</script>')
    data = hub.post("/options", {"username": "alice", "server_name": ""}, format="json").json()
    assert '<script>alert("x")</script>' not in data["html"]
    assert data["profiles"][0]["display_name"] == '</script><script>alert("x")</script>'


def _count_queries(**kwargs) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        data = options_data(**kwargs)
    return len(captured.captured_queries), data


def test_options_data_runs_the_same_number_of_queries_for_10_and_1000_of_each_kind() -> None:
    make_profile("plain", default=True)
    make_preset("small", default=True)
    args = {"username": "alice", "server_name": "", "groups": ["team"], "default_namespace": ""}
    fill_inventory(10, start=0)
    small_count, small = _count_queries(**args)
    assert len(small["namespaces"]) == len(small["hdfs"]) == len(small["gaffer_graphs"]) == 10
    assert len(small["service_accounts"]) == len(small["volumes"]) == 10

    fill_inventory(990, start=10)
    large_count, large = _count_queries(**args)
    assert len(large["namespaces"]) == len(large["hdfs"]) == len(large["gaffer_graphs"]) == 1000
    assert len(large["service_accounts"]) == len(large["volumes"]) == 1000
    assert large_count == small_count
    # 20, plus the machine type kind's two reads when the snapshot is built (the enabled
    # machine types, and which namespaces have a quota or limit range), and the image
    # lifecycle entries the profile kind reads.
    assert small_count <= 23


def test_request_state_reads_what_the_orm_reads(hub) -> None:
    """The one plain-SQL read of /options gives the ORM's values on either database.

    SQLite hands a raw DateTimeField back naive: once a round had completed, every
    /options there was a 500 (naive minus aware).
    """
    finished = timezone.now() - timedelta(minutes=1)
    SyncRound.objects.create(status=SyncRound.Status.COMPLETED, started_at=finished, finished_at=finished)
    SyncRound.objects.create(kind=SyncRound.Kind.FULL, status=SyncRound.Status.FAILED, started_at=timezone.now())
    make_profile("plain", default=True)
    state = request_state(username="alice", server_name="")
    assert state.freshness == inventory_freshness() == {"last_synced_at": finished.isoformat(), "stale": True}
    assert state.generation == current_inventory_generation()
    assert state.generation is not None

    response = hub.post("/options", {"username": "alice", "server_name": ""}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["inventory"] == {"last_synced_at": finished.isoformat(), "stale": True}
