"""Hostile and unlucky input: odd bodies, odd numbers, operator typos, overlapping spawns."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ValidationError
from django.db import connection
from kubernetes import client as k8s

from inventory.models import Profile, ResourcePreset
from spawning.models import SpawnRecord
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    offer_namespace,
    our_objects,
    prespawn_body,
)
from tests.hubsupport import database_url, start_portal
from tests.plans import create_graph

IDENTITY = {"username": "alice", "server_name": "", "pod_name": "jupyter-alice", "default_namespace": "team"}


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/options", "/prespawn", "/poststop"])
def test_a_body_nested_too_deeply_is_a_400(path: str) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = hub_client().post(path, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw_value",
    ["1e400", "-1e400", "123456789012345678901234567890", "-0.5", "0"],
    ids=["huge", "minus-huge", "huge-int", "negative", "zero"],
)
def test_odd_numbers_are_refused_with_the_field_named(raw_value: str) -> None:
    offer_namespace("team")
    make_profile("plain")
    make_preset(default=True)
    body = (
        '{"username": "alice", "server_name": "", "pod_name": "jupyter-alice", "default_namespace": "team",'
        f' "profile": "plain", "user_options": {{"profile": "plain", "resources_cpu": {raw_value}}}}}'
    )
    response = hub_client().post("/prespawn", body, content_type="application/json")
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    # Named at the top for a number out of bounds; as user_options.resources_cpu for one JSON cannot carry.
    assert "resources_cpu" in fields or "user_options.resources_cpu" in fields, fields


@pytest.mark.django_db
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_numbers_json_does_not_allow_are_a_parse_error(constant: str) -> None:
    body = f'{{"username": "alice", "server_name": "", "user_options": {{"resources_cpu": {constant}}}}}'
    response = hub_client().post("/prespawn", body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.django_db
def test_an_unknown_http_method_is_counted_as_other(client) -> None:
    client.generic("BREW", "/healthz")
    metrics = client.get("/metrics").content.decode()
    assert 'method="BREW"' not in metrics
    assert 'endpoint="healthz",method="other"' in metrics


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"spark_ingress_host": "spark_{{USERNAME}}.example.org"}, "spark_ingress_host", "DNS labels"),
        ({"spark_ingress_host": "{{USER}}.example.org"}, "spark_ingress_host", "placeholders"),
        ({"kubespawner_override": {"image": "x:1"}}, "kubespawner_override", "image"),
        ({"kubespawner_override": {"namespace": "kube-system"}}, "kubespawner_override", "namespace"),
        ({"kubespawner_override": {"not a trait": 1}}, "kubespawner_override", "not KubeSpawner trait names"),
    ],
)
def test_profile_typos_that_would_break_every_spawn_are_refused(fields: dict, field: str, message: str) -> None:
    profile = Profile(slug="p", display_name="P", image="example.org/p:1", **fields)
    with pytest.raises(ValidationError) as refused:
        profile.full_clean()
    assert message in " ".join(refused.value.message_dict[field])


@pytest.mark.django_db
def test_a_profile_with_a_good_host_template_and_overrides_is_accepted() -> None:
    Profile(
        slug="p",
        display_name="P",
        image="example.org/p:1",
        spark_ingress_host="{{USERNAME}}-{{SERVERNAME}}.spark.example.org",
        kubespawner_override={"start_timeout": 600, "cpu_limit": 2},
    ).full_clean()


@pytest.mark.django_db
def test_a_preset_minimum_of_zero_is_refused() -> None:
    preset = ResourcePreset(slug="s", display_name="S", cpu_min=Decimal("0"))
    with pytest.raises(ValidationError) as refused:
        preset.full_clean()
    assert "above zero" in " ".join(refused.value.message_dict["cpu_min"])


@pytest.mark.kube
@pytest.mark.django_db
def test_a_configuration_the_cluster_rejects_is_a_502_for_an_operator_not_a_retry(
    kube, core_v1: k8s.CoreV1Api, namespace: str
) -> None:
    offer_namespace(namespace)
    make_preset(default=True)
    # A row saved before the host was validated (create() skips full_clean): the apiserver refuses it.
    make_profile("spark", enable_spark=True, spark_ingress_host="spark_{{USERNAME}}.example.org")
    username, server = "alice", "lab"
    body = prespawn_body(profile="spark", namespace=namespace, username=username, server_name=server)
    response = hub_client().post("/prespawn", body, format="json")
    assert response.status_code == 502, response.content
    assert response.json()["error"] == "cluster_rejected"
    assert "operator" in response.json()["detail"]
    assert our_objects(core_v1, namespace) == []
    assert SpawnRecord.objects.get(username=username).result == SpawnRecord.Result.FAILED


@pytest.mark.kube
# Across gunicorn workers only PostgreSQL's advisory lock serialises; SQLite's lock is per process.
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_overlapping_spawns_with_different_choices_leave_one_whole_set(
    kube, core_v1: k8s.CoreV1Api, make_namespace, tmp_path: Path
) -> None:
    """Calls for the same server run one at a time, so no call undoes or prunes half of another's set."""
    notebooks, graphs = make_namespace(), make_namespace()
    create_graph(core_v1, graphs)
    offer_namespace(notebooks)
    make_preset("small", default=True)
    make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=True, spark_ingress_path="/spark")
    make_profile("hdfs", enable_hdfs=True)
    make_hdfs(notebooks, "lake")
    make_graph(graphs, "graph")
    full = prespawn_body(
        profile="full", namespace=notebooks, server_name="lab", hdfs=f"{notebooks}:lake", gaffer_graph=f"{graphs}:graph"
    )
    small = prespawn_body(profile="hdfs", namespace=notebooks, server_name="lab", hdfs=f"{notebooks}:lake")
    portal, base = start_portal(
        db_url=database_url(connection.settings_dict),
        kubeconfig=kube.kubeconfig,
        env_extra={
            "OPTIONS_PORTAL_HUB_TOKEN": TOKEN,
            "LOG_LEVEL": "WARNING",
            "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 10",
        },
        log_dir=tmp_path,
    )
    headers = {"Authorization": f"token {TOKEN}"}
    try:
        alone: dict[str, list[str]] = {}
        for name, body in (("full", full), ("small", small)):
            assert requests.post(f"{base}/prespawn", json=body, headers=headers, timeout=30).status_code == 200
            alone[name] = our_objects(core_v1, notebooks)
        assert len(alone["full"]) == 7 and len(alone["small"]) == 1

        barrier = threading.Barrier(20)

        def spawn(index: int) -> int:
            barrier.wait(timeout=30)
            body = full if index % 2 else small
            return requests.post(f"{base}/prespawn", json=body, headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(spawn, range(20)))
        assert statuses == [200] * 20, portal.log()[-3000:]
        assert our_objects(core_v1, notebooks) in (alone["full"], alone["small"])
    finally:
        portal.stop()
