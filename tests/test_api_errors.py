"""Every answer the hub or a client can provoke keeps the JSON error contract, on PostgreSQL and SQLite.

A body too large (413), too many form fields (400), the database unavailable
(503, "retry is safe") or lost after the objects were applied (still the
success reply), every refused field at once, nested field errors flattened to
the declared shape, any Unicode in names and files, /readyz without driver
text, a refused spawn's stored input capped. Each checks that nothing was left
behind in the real apiserver.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connection, connections
from kubernetes import client as k8s

from inventory.models import GafferGraph
from spawning import provisioning
from spawning.models import RememberedChoices, SpawnRecord
from spawning.serializers import ErrorSerializer
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
from tests.hubsupport import free_port
from tests.plans import create_graph

pytestmark = [pytest.mark.kube]

EMOJI_USER = "zoë🦄"
EMOJI_SERVER = "lab🚀"
SPAWNED = ["ConfigMap/jhub-spark-config-alice", "Service/jupyter-alice"]
EMOJI_SCHEMA = '{"entities": {"Person🧑‍🚀": {"description": "naïve 😀 ünïcødé"}}}'


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def hub():
    return hub_client()


@pytest.fixture
def plain(kube, namespace: str) -> str:
    """A namespace offered with a Spark profile and a default preset: a spawn there makes two objects."""
    offer_namespace(namespace)
    make_profile("plain", default=True, enable_spark=True)
    make_preset("small", default=True)
    return namespace


def _assert_error_shape(body: dict) -> None:
    """The body is what the OpenAPI schema declares for every error."""
    serializer = ErrorSerializer(data=body)
    assert serializer.is_valid(), (body, serializer.errors)
    assert set(body) <= {"error", "fields", "detail"}
    assert "fields" in body or "detail" in body


def _no_tracebacks(caplog: pytest.LogCaptureFixture, *, server_error: bool = False) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if server_error:
        # Django's one line per 5xx answer ("Service Unavailable: /options"), and nothing else.
        assert all(message.startswith("Service Unavailable: /") for message in errors), errors
    else:
        assert errors == []


@contextmanager
def database_unreachable() -> Iterator[None]:
    """The portal's database refuses connections, as when its server is down.

    The real driver fails to connect: PostgreSQL on a port nothing listens on,
    SQLite on a file in a folder that does not exist.
    """
    settings_dict = connection.settings_dict
    saved = dict(settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        settings_dict["PORT"] = str(free_port())
    else:
        settings_dict["NAME"] = str(Path(tempfile.gettempdir()) / "no-such-folder-op" / "db.sqlite3")
    try:
        yield
    finally:
        connection.close()
        settings_dict.clear()
        settings_dict.update(saved)


# --- Bodies too large, too many fields ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("megabytes", [3, 12])
@pytest.mark.parametrize("path", ["/prespawn", "/options"])
def test_a_body_over_the_limit_is_a_413_in_json_without_tracebacks(
    hub, plain: str, core_v1: k8s.CoreV1Api, caplog: pytest.LogCaptureFixture, path: str, megabytes: int
) -> None:
    body = prespawn_body(profile="plain", namespace=plain)
    body["user_options"]["padding"] = ["x" * (megabytes * 1024 * 1024)]
    caplog.set_level(logging.INFO)
    response = hub.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    _assert_error_shape(payload)
    assert payload["error"] == "too_large"
    assert "larger than the portal accepts" in payload["detail"]
    _no_tracebacks(caplog)
    assert not SpawnRecord.objects.exists()
    assert our_objects(core_v1, plain) == []


@pytest.mark.django_db
def test_more_than_1000_form_fields_is_a_400_in_json(
    hub, plain: str, core_v1: k8s.CoreV1Api, caplog: pytest.LogCaptureFixture
) -> None:
    fields = [("username", "alice"), ("server_name", ""), ("pod_name", "jupyter-alice"), ("profile", "plain")]
    fields += [(f"field{i}", "x") for i in range(1000)]
    caplog.set_level(logging.INFO)
    response = hub.post("/prespawn", data=urlencode(fields), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400, response.content[:300]
    payload = response.json()
    _assert_error_shape(payload)
    assert payload["error"] == "too_many_fields"
    assert "1000" in payload["detail"]
    _no_tracebacks(caplog)
    assert our_objects(core_v1, plain) == []


@pytest.mark.django_db
def test_more_than_1000_json_form_fields_names_user_options(hub, plain: str, core_v1: k8s.CoreV1Api) -> None:
    body = prespawn_body(profile="plain", namespace=plain)
    body["user_options"].update({f"field{i}": "x" for i in range(1000)})
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400
    payload = response.json()
    _assert_error_shape(payload)
    assert payload["fields"] == {"user_options": ["The form has more than 1000 fields."]}
    assert our_objects(core_v1, plain) == []


# --- The database unavailable ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_database_down_is_a_503_retry_is_safe_and_nothing_is_made(
    hub, plain: str, core_v1: k8s.CoreV1Api, caplog: pytest.LogCaptureFixture
) -> None:
    spawn = prespawn_body(profile="plain", namespace=plain)
    options = {"username": "alice", "server_name": "", "default_namespace": plain}
    assert hub.post("/options", options, format="json").status_code == 200
    caplog.set_level(logging.INFO)
    with database_unreachable():
        # /poststop needs the database on PostgreSQL only, for its per-server lock; on SQLite
        # the lock is in the process and the cleanup, all in the cluster, is done (checked below).
        calls = [("/options", options), ("/prespawn", spawn)]
        if connection.vendor == "postgresql":
            calls.append(("/poststop", options))
        else:
            assert hub.post("/poststop", options, format="json").json() == {"deleted": []}
            # Its record could not be written, which it logs as an error: the cluster may have changed.
            assert any("stopped record" in r.getMessage() for r in caplog.records)
            caplog.clear()
        for path, body in calls:
            response = hub.post(path, body, format="json")
            assert response.status_code == 503, (path, response.content[:300])
            payload = response.json()
            _assert_error_shape(payload)
            assert payload == {
                "error": "database_unavailable",
                "detail": "The portal's database is unavailable; nothing was changed, retrying is safe.",
            }
        assert our_objects(core_v1, plain) == []
    _no_tracebacks(caplog, server_error=True)
    # The same process answers again once the database is back: the retry the 503 invited.
    retried = hub.post("/prespawn", spawn, format="json")
    assert retried.status_code == 200, retried.content
    assert our_objects(core_v1, plain) == SPAWNED
    assert SpawnRecord.objects.get().result == SpawnRecord.Result.PROVISIONED


@pytest.mark.django_db(transaction=True)
def test_database_lost_after_the_apply_still_answers_the_success_reply(
    hub, plain: str, core_v1: k8s.CoreV1Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spawn = prespawn_body(profile="plain", namespace=plain)
    expected = hub.post("/prespawn", spawn, format="json")
    assert expected.status_code == 200
    SpawnRecord.objects.all().delete()
    RememberedChoices.objects.all().delete()

    real_provision = provisioning.provision
    with ExitStack() as outage:

        def provision_then_lose_the_database(*args, **kwargs):
            # The real apply runs; the database goes away between it and the record.
            result = real_provision(*args, **kwargs)
            outage.enter_context(database_unreachable())
            return result

        monkeypatch.setattr(provisioning, "provision", provision_then_lose_the_database)
        caplog.set_level(logging.INFO)
        response = hub.post("/prespawn", spawn, format="json")
        assert response.status_code == 200, response.content
        assert response.json() == expected.json()
    assert our_objects(core_v1, plain) == SPAWNED
    # Said in the log, without a traceback: the operator sees why the record is missing.
    assert any("could not be saved" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert not SpawnRecord.objects.exists()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_connection_killed_after_the_apply_answers_success_and_records_it(
    hub, plain: str, core_v1: k8s.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawn = prespawn_body(profile="plain", namespace=plain)
    real_provision = provisioning.provision
    killer = connections.create_connection("default")

    def provision_then_kill_our_connection(*args, **kwargs):
        result = real_provision(*args, **kwargs)
        pid = connection.connection.get_backend_pid()
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
        return result

    monkeypatch.setattr(provisioning, "provision", provision_then_kill_our_connection)
    try:
        response = hub.post("/prespawn", spawn, format="json")
    finally:
        killer.close()
    assert response.status_code == 200, response.content
    assert our_objects(core_v1, plain) == SPAWNED
    # The record is written on a fresh connection, so the next spawn of this server can prune by it.
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.PROVISIONED
    assert sorted(f"{o['kind']}/{o['name']}" for o in record.cluster_objects) == SPAWNED
    assert RememberedChoices.objects.filter(username="alice", server_name="").exists()


@pytest.mark.django_db(transaction=True)
def test_readyz_says_the_database_is_down_without_the_drivers_words(client) -> None:
    with database_unreachable():
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable"}
    assert client.get("/readyz").json() == {"status": "ok", "database": "ok"}


# --- Refusals: all at once, one level deep, stored small -------------------------------------------


@pytest.mark.django_db
def test_every_refused_field_is_reported_at_once(hub, plain: str, core_v1: k8s.CoreV1Api) -> None:
    make_hdfs(plain, "lake")
    body = prespawn_body(
        profile="plain",
        namespace=plain,
        resources_cpu="lots",
        resources_mem="-5",
        volume_name="not a label!",
        hdfs=f"{plain}:lake",
        k8s_service_account=f"{plain}:nobody",
    )
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    _assert_error_shape(payload)
    fields = payload["fields"]
    assert sorted(fields) == ["hdfs", "k8s_service_account", "resources_cpu", "resources_mem", "volume_name"]
    assert fields["resources_cpu"] == ["'lots' is not a number."]
    assert "outside the allowed range" in fields["resources_mem"][0]
    assert fields["hdfs"] == ["The profile 'plain' does not enable HDFS."]
    assert fields["k8s_service_account"] == [f"There is no service account '{plain}:nobody' available."]
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.REFUSED
    for field in fields:
        assert f"{field}: " in record.message
    assert our_objects(core_v1, plain) == []


@pytest.mark.django_db
def test_a_refused_profile_still_reports_the_other_fields(hub, plain: str, core_v1: k8s.CoreV1Api) -> None:
    body = prespawn_body(profile="missing", namespace="elsewhere", resources_cpu="NaN")
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["fields"]) == ["k8s_namespace", "profile", "resources_cpu"]
    assert our_objects(core_v1, plain) == []


@pytest.mark.django_db
def test_nested_field_errors_are_flattened_to_the_declared_shape(hub, plain: str) -> None:
    response = hub.post(
        "/options", {"username": "alice", "server_name": "", "groups": ["team", "x" * 300, 7]}, format="json"
    )
    assert response.status_code == 400
    payload = response.json()
    _assert_error_shape(payload)
    assert payload == {
        "error": "invalid",
        "fields": {"groups.1": ["Ensure this field has no more than 255 characters."]},
    }
    listed = hub.post("/prespawn", [1, 2], format="json")
    assert listed.status_code == 400
    _assert_error_shape(listed.json())
    assert list(listed.json()["fields"]) == ["non_field_errors"]


@pytest.mark.django_db
def test_a_refused_spawn_stores_its_input_capped(hub, plain: str) -> None:
    body = prespawn_body(profile="missing", namespace=plain)
    body["user_options"].update({f"field{i}": "y" * 1000 for i in range(990)})
    assert len(json.dumps(body)) > 990_000
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.REFUSED
    stored = record.choices
    assert len(stored) == 51
    assert stored["profile"] == "missing"
    assert stored["…"] == f"{len(body['user_options']) - 50} more fields not stored"
    assert all(len(value) <= 200 for value in stored.values())
    assert len(json.dumps(stored)) < 20_000


# --- Any Unicode, end to end against the apiserver -------------------------------------------------


@pytest.mark.django_db
def test_an_emoji_username_spawns_with_hdfs_gaffer_and_spark(
    hub, kube, core_v1: k8s.CoreV1Api, make_namespace, caplog: pytest.LogCaptureFixture
) -> None:
    notebooks, graphs = make_namespace(), make_namespace()
    create_graph(core_v1, graphs)
    core_v1.patch_namespaced_config_map("graph-schema", graphs, {"data": {"elements.json": EMOJI_SCHEMA}})
    offer_namespace(notebooks)
    make_preset("small", default=True)
    make_profile(
        "full",
        enable_hdfs=True,
        enable_gaffer=True,
        enable_spark=True,
        spark_ingress_host="spark.example.org",
        spark_ingress_path="/{{USERNAME}}/{{SERVERNAME}}",
    )
    make_hdfs(notebooks, "lake", description="Données 🌊")
    graph: GafferGraph = make_graph(graphs, "graph", description="Graphe 📈")
    body = prespawn_body(
        profile="full",
        namespace=notebooks,
        username=EMOJI_USER,
        server_name=EMOJI_SERVER,
        hdfs=f"{notebooks}:lake",
        gaffer_graph=graph.key,
    )
    caplog.set_level(logging.INFO)
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 200, response.content
    made = our_objects(core_v1, notebooks)
    assert len(made) == 7, made
    assert {item.split("/")[0] for item in made} == {"ConfigMap", "Secret", "Service", "Ingress"}
    schema_copy = next(
        config
        for config in core_v1.list_namespaced_config_map(notebooks).items
        if "elements.json" in (config.data or {})
    )
    assert schema_copy.data["elements.json"] == EMOJI_SCHEMA
    assert schema_copy.metadata.annotations["optionsportal.io/username"] == EMOJI_USER
    assert schema_copy.metadata.annotations["optionsportal.io/servername"] == EMOJI_SERVER
    hadoop = next(
        config
        for config in core_v1.list_namespaced_config_map(notebooks).items
        if "hadoop-env.sh" in (config.data or {})
    )
    assert f"HADOOP_USER_NAME={EMOJI_USER}" in hadoop.data["hadoop-env.sh"].replace("'", "")
    assert SpawnRecord.objects.get().result == SpawnRecord.Result.PROVISIONED
    _no_tracebacks(caplog)

    stopped = hub.post("/poststop", {"username": EMOJI_USER, "server_name": EMOJI_SERVER}, format="json")
    assert stopped.status_code == 200, stopped.content
    assert len(stopped.json()["deleted"]) == 7
    assert our_objects(core_v1, notebooks) == []
