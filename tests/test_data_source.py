"""Data sources, the kind added through the offer registry: curated in the admin, offered by access
rule, validated, provisioned as a ConfigMap in the notebook's namespace and mounted into it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from inventory.models import DataSource
from spawning.form import render_options_form
from spawning.models import SpawnRecord
from tests.hubapi import (
    TOKEN,
    hub_client,
    identity,
    make_preset,
    make_profile,
    make_rule,
    offer_namespace,
    our_objects,
    prespawn_body,
)
from tests.test_api_schema import _schema, assert_matches_schema

KAFKA = {"kafka.properties": "bootstrap.servers=kafka.data.svc:9092\nsecurity.protocol=SSL\n", "topics.txt": "roads\n"}


def make_source(slug: str = "kafka", **fields) -> DataSource:
    values = {"display_name": slug.title(), "description": f"The {slug} cluster", "files": dict(KAFKA)}
    values.update(fields)
    return DataSource.objects.create(slug=slug, **values)


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def team(kube, namespace: str) -> str:
    offer_namespace(namespace)
    make_profile("plain", default=True)
    make_preset("small", default=True)
    return namespace


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../etc/passwd": "x"}, "not a file name"),
        ({"ok.txt": 3}, "JSON object of file names"),
        (["a"], "JSON object of file names"),
        ({"big.txt": "x" * (1024 * 1024 + 1)}, "larger than a ConfigMap"),
    ],
)
def test_files_a_config_map_cannot_hold_are_refused(files, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DataSource(slug="s", display_name="S", files=files).clean()
    assert message in " ".join(refused.value.message_dict["files"])


@pytest.mark.django_db
def test_offered_to_everyone_until_a_rule_names_it_and_never_when_disabled() -> None:
    kafka = make_source("kafka")
    make_source("old", enabled=False)
    hub = hub_client()

    def offered(username: str, groups: list[str]) -> list[str]:
        reply = hub.post("/options", identity(username=username, groups=groups), format="json")
        assert reply.status_code == 200, reply.content
        # Nothing offered leaves the key out, so the reply is the one before data sources existed.
        return [item["id"] for item in reply.json().get("data_sources", [])]

    assert offered("alice", []) == ["kafka"]
    make_rule("streaming", groups=["streaming"], data_sources=[kafka])
    assert offered("alice", []) == []
    assert offered("bob", ["streaming"]) == ["kafka"]


@pytest.mark.django_db
def test_the_form_offers_it_escaped_and_only_when_there_is_one() -> None:
    make_source("kafka", display_name="Kafka </option><script>x()</script>", description="<b>brokers</b>")
    data = hub_client().post("/options", identity(), format="json").json()
    html = render_options_form({**data, "selected": {**data["selected"], "data_source": "kafka"}})
    assert 'name="data_source"' in html
    assert '<option value="kafka" selected>Kafka &lt;/option&gt;&lt;script&gt;x()&lt;/script&gt;</option>' in html
    assert "&lt;b&gt;brokers&lt;/b&gt;" in html
    # Nothing offered: no section at all.
    DataSource.objects.all().delete()
    empty = hub_client().post("/options", identity(), format="json").json()
    assert 'name="data_source"' not in empty["html"]
    assert "data_sources" not in empty
    assert "data_source" not in empty["selected"]


@pytest.mark.django_db
@pytest.mark.kube
def test_a_chosen_data_source_is_applied_mounted_and_cleaned_up(core_v1, team: str) -> None:
    make_source("kafka")
    hub = hub_client()
    schema = _schema()
    options = hub.post("/options", identity(default_namespace=team), format="json")
    assert_matches_schema(schema, "/options", options)

    reply = hub.post("/prespawn", prespawn_body(profile="plain", namespace=team, data_source="kafka"), format="json")
    assert reply.status_code == 200, reply.content
    assert_matches_schema(schema, "/prespawn", reply)
    sent = reply.json()
    assert sent["env"]["DATA_SOURCE_DIR"] == "/etc/datasources/kafka"
    assert {"name": "jhub-data-source", "configMap": {"name": "jhub-data-source-alice"}} in sent["volumes"]
    assert {"name": "jhub-data-source", "mountPath": "/etc/datasources/kafka", "readOnly": True} in sent["volumeMounts"]
    config_map = core_v1.read_namespaced_config_map("jhub-data-source-alice", team)
    assert config_map.data == KAFKA
    assert config_map.metadata.labels["app.kubernetes.io/component"] == "data-source"
    assert config_map.metadata.annotations["optionsportal.io/username"] == "alice"
    assert SpawnRecord.objects.latest("id").choices["data_source"] == "kafka"
    # Remembered for the next form of this server.
    assert (
        hub.post("/options", identity(default_namespace=team), format="json").json()["selected"]["data_source"]
        == "kafka"
    )

    # The next spawn without it removes the ConfigMap the last one made.
    again = hub.post("/prespawn", prespawn_body(profile="plain", namespace=team), format="json")
    assert again.status_code == 200, again.content
    assert "DATA_SOURCE_DIR" not in again.json()["env"]
    assert our_objects(core_v1, team) == []

    hub.post("/prespawn", prespawn_body(profile="plain", namespace=team, data_source="kafka"), format="json")
    assert our_objects(core_v1, team) == ["ConfigMap/jhub-data-source-alice"]
    stopped = hub.post("/poststop", identity(), format="json")
    assert stopped.status_code == 200, stopped.content
    assert our_objects(core_v1, team) == []


@pytest.mark.django_db
@pytest.mark.kube
def test_a_data_source_the_user_may_not_use_is_refused_and_nothing_is_made(core_v1, team: str) -> None:
    kafka = make_source("kafka")
    make_rule("streaming", groups=["streaming"], data_sources=[kafka])
    hub = hub_client()
    refused = hub.post("/prespawn", prespawn_body(profile="plain", namespace=team, data_source="kafka"), format="json")
    assert refused.status_code == 400
    assert refused.json()["fields"] == {"data_source": ["You may not use the data source 'kafka'."]}
    unknown = hub.post("/prespawn", prespawn_body(profile="plain", namespace=team, data_source="nope"), format="json")
    assert unknown.json()["fields"] == {"data_source": ["There is no data source 'nope' available."]}
    assert our_objects(core_v1, team) == []
    assert_matches_schema(_schema(), "/prespawn", refused)
