"""The OpenAPI schema at /api/schema/, and a property test over it: no request makes the API answer 5xx.

Request bodies are generated from the schema itself (so the test follows the
API as it changes), mixed with wrong types, missing fields and the values the
real form sends, so that both refusals and real provisioning are exercised.
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from optionsportal_hub import reply as reply_keys
from rest_framework.test import APIClient

from inventory.models import SyncRound
from tests.hubapi import (
    TOKEN,
    hub_client,
    identity,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    make_service_account,
    make_volume,
    offer_namespace,
    prespawn_body,
)

ENDPOINTS = ("/options", "/prespawn", "/poststop")
FORM_FIELDS = (
    "profile",
    "resource_preset",
    "resources_cpu",
    "resources_mem",
    "k8s_namespace",
    "volume",
    "volume_name",
    "resources_hdd",
    "k8s_service_account",
    "hdfs",
    "gaffer_graph",
    "spark_cpu",
    "spark_mem",
)


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


def _schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_served_and_describes_the_hub_api() -> None:
    schema = _schema()
    assert schema["openapi"].startswith("3.")
    assert set(ENDPOINTS) <= set(schema["paths"])
    components = schema["components"]["schemas"]
    required = {path: set(components[_body_ref(schema, path).rsplit("/", 1)[-1]]["required"]) for path in ENDPOINTS}
    assert required["/options"] == {"username", "server_name"}
    assert required["/prespawn"] == {
        "username",
        "server_name",
        "pod_name",
        "default_namespace",
        "user_options",
        "profile",
    }
    assert required["/poststop"] == {"username", "server_name"}
    for path in ENDPOINTS:
        operation = schema["paths"][path]["post"]
        assert operation["security"] == [{"hubToken": []}]
        assert {"200", "400", "401"} <= set(operation["responses"])
    assert {"200", "400", "401", "503"} <= set(schema["paths"]["/prespawn"]["post"]["responses"])
    assert schema["components"]["securitySchemes"]["hubToken"]["name"] == "Authorization"
    options_out = components["OptionsOutput"]["properties"]
    assert {"html", "profiles", "bounds", "selected", "service_accounts", "inventory"} <= set(options_out)


def _body_ref(schema: dict[str, Any], path: str) -> str:
    return schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]


# --- Strategies built from the schema ----------------------------------------------------------------

# Strings JSON can carry that a database or Kubernetes cannot: NUL, a lone surrogate, line separators.
nasty = st.sampled_from(["\x00", "a\ud800b", "\u2028", "</script>", "x" * 300, "-", "."])
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    nasty,
)
any_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
names = st.text(alphabet=string.ascii_letters + string.digits + "-_.@ ü/", min_size=0, max_size=40) | nasty


def _from_schema(node: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy:
    if "$ref" in node:
        return _from_schema(components[node["$ref"].rsplit("/", 1)[-1]], components)
    if "oneOf" in node:
        return st.one_of(*[_from_schema(option, components) for option in node["oneOf"]])
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        required = set(node.get("required", []))
        props = {key: _from_schema(value, components) for key, value in node["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required},
            optional={k: v for k, v in props.items() if k not in required},
        )
    if kind == "object":
        values = _from_schema(node.get("additionalProperties") or {}, components)
        return st.dictionaries(st.sampled_from(FORM_FIELDS) | st.text(max_size=12), values, max_size=6)
    if kind == "array":
        return st.lists(_from_schema(node.get("items") or {}, components), max_size=node.get("maxItems", 3) or 3)
    if kind == "string":
        return names if node.get("maxLength", 0) >= 40 else st.text(max_size=node.get("maxLength", 20)) | nasty
    if kind in ("number", "integer"):
        return st.integers(-10, 100_000) | st.floats(allow_nan=False, allow_infinity=False)
    return any_json


def _realistic_options(namespace: str) -> st.SearchStrategy:
    """What the real form sends, with numbers around and outside the bounds."""
    number_text = st.one_of(
        st.decimals(min_value=-1, max_value=200_000, allow_nan=False, places=2).map(str),
        st.sampled_from(["", "abc", "1e999999", "-0", "NaN", "0.25", "512", "1_000", " 1 ", "1e-999999"]),
    )
    single = st.fixed_dictionaries(
        {"profile": st.sampled_from(["plain", "full", "nope"]), "k8s_namespace": st.just(namespace)},
        optional={
            "resources_cpu": number_text,
            "resources_mem": number_text,
            "resources_hdd": number_text,
            "spark_cpu": number_text,
            "spark_mem": number_text,
            "volume_name": names,
            "hdfs": st.sampled_from(["", f"{namespace}:lake", "x:y"]),
            "gaffer_graph": st.sampled_from(["", f"{namespace}:roads", "::"]),
            "resource_preset": st.sampled_from(["", "custom", "small", "zzz"]),
        },
    )
    # The hub wraps each value in a list.
    return single.map(lambda options: {key: [value] for key, value in options.items()}) | single


@pytest.mark.django_db
@pytest.mark.kube
def test_no_request_to_the_hub_api_gets_a_5xx(kube, namespace: str) -> None:
    schema = _schema()
    components = schema["components"]["schemas"]
    offer_namespace(namespace)
    make_profile("plain", default=True)
    make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=False)
    make_preset("small", default=True)
    make_hdfs(namespace, "lake")

    bodies = {path: _from_schema({"$ref": _body_ref(schema, path)}, components) for path in ENDPOINTS}
    realistic_prespawn = st.fixed_dictionaries(
        {
            "username": names.filter(str.strip),
            "server_name": names,
            "pod_name": st.just("jupyter-x"),
            "default_namespace": st.just(namespace),
            "user_options": _realistic_options(namespace),
            "profile": st.sampled_from(["plain", "full", ""]),
        },
        optional={"groups": st.lists(names, max_size=3)},
    )
    requests = st.one_of(
        st.tuples(st.sampled_from(ENDPOINTS), any_json),
        *[st.tuples(st.just(path), strategy) for path, strategy in bodies.items()],
        st.tuples(st.just("/prespawn"), realistic_prespawn),
    )
    hub = hub_client()
    seen: dict[int, int] = {}

    @hypothesis_settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests)
    def check(request: tuple[str, Any]) -> None:
        path, body = request
        # Encoded here with ASCII escapes: the client's own renderer cannot send a lone surrogate.
        response = hub.post(path, json.dumps(body), content_type="application/json")
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (path, body, response.content)
        assert response["Content-Type"].startswith("application/json")
        if response.status_code == 400:
            assert response.json()["error"] == "invalid"

    check()
    # The run reached both refusals and successes, not just one kind of answer.
    assert seen.get(400, 0) > 0
    assert seen.get(200, 0) > 0


# --- Real replies against the schema, with closed objects ----------------------------------------


def _closed(node: Any) -> Any:
    """The schema with every object closed (no key it does not declare) and OpenAPI 3.0's ``nullable`` as JSON Schema."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _closed(value) for key, value in node.items()}
    if closed.get("type") == "object" and "properties" in closed and "additionalProperties" not in closed:
        closed["additionalProperties"] = False
    if closed.pop("nullable", False):
        if "type" in closed:
            closed["type"] = [closed["type"], "null"]
        else:
            closed = {"anyOf": [closed, {"type": "null"}]}
    return closed


def _response_schema(schema: dict[str, Any], path: str, status: int) -> dict[str, Any]:
    return schema["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"]["schema"]


def assert_matches_schema(schema: dict[str, Any], path: str, response: Any) -> None:
    """The reply is valid against its declared response schema, every object closed."""
    body = response.json()
    document = {
        "$ref": _response_schema(schema, path, response.status_code)["$ref"],
        "components": {"schemas": _closed(schema["components"]["schemas"])},
    }
    errors = sorted(Draft202012Validator(document).iter_errors(body), key=lambda error: list(error.path))
    assert not errors, [f"{'/'.join(map(str, error.path))}: {error.message}" for error in errors]


def test_closing_the_schema_catches_an_undeclared_key() -> None:
    schema = _schema()
    document = {
        "$ref": _response_schema(schema, "/poststop", 200)["$ref"],
        "components": {"schemas": _closed(schema["components"]["schemas"])},
    }
    validator = Draft202012Validator(document)
    assert validator.is_valid({"deleted": [{"kind": "ConfigMap", "namespace": "a", "name": "b"}]})
    assert not validator.is_valid({"deleted": [], "extra": 1})
    assert not validator.is_valid({"deleted": [{"kind": "ConfigMap", "namespace": "a", "name": "b", "uid": "x"}]})


@pytest.mark.django_db
@pytest.mark.kube
def test_real_replies_match_the_schema_with_closed_objects(kube, core_v1, namespace: str) -> None:
    schema = _schema()
    hub = hub_client()
    offer_namespace(namespace, description="The team's namespace")
    make_profile(
        "full",
        default=True,
        enable_hdfs=True,
        enable_gaffer=True,
        enable_spark=True,
        kubespawner_override={"start_timeout": 600, "node_selector": {"pool": "big"}},
    )
    make_preset("small", default=True)
    make_hdfs(namespace, "lake")
    make_graph(namespace, "roads")
    make_service_account(namespace, "reader", observed_role_arn="arn:aws:iam::123456789012:role/reader")
    make_volume(namespace, "claim-alice", "alice")
    SyncRound.objects.create(kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, finished_at=timezone.now())

    options = hub.post("/options", identity(default_namespace=namespace), format="json")
    assert options.status_code == 200, options.content
    data = options.json()
    # Every list is filled, so every item schema is exercised.
    for key in ("profiles", "presets", "namespaces", "service_accounts", "volumes", "hdfs", "gaffer_graphs"):
        assert data[key], key
    assert_matches_schema(schema, "/options", options)

    chosen = {
        "hdfs": f"{namespace}:lake",
        "gaffer_graph": f"{namespace}:roads",
        "k8s_service_account": f"{namespace}:reader",
        "volume": f"{namespace}:claim-alice",
    }
    for version in (1, 2):
        body = {**prespawn_body(profile="full", namespace=namespace, **chosen), "reply_version": version}
        reply = hub.post("/prespawn", body, format="json")
        assert reply.status_code == 200, reply.content
        sent = reply.json()
        assert {"serviceAccount", "pvc_name"} <= set(sent)
        assert ({"image", "kubespawner_override"} <= set(sent)) is (version == 2)
        assert_matches_schema(schema, "/prespawn", reply)

    body = {**prespawn_body(profile="full", namespace=namespace, **chosen), "reply_version": 2, "dry_run": True}
    dry_run = hub.post("/prespawn", body, format="json")
    assert dry_run.status_code == 200, dry_run.content
    assert dry_run.json()["objects"] and dry_run.json()["dry_run"] == "server"
    assert_matches_schema(schema, "/prespawn", dry_run)

    stopped = hub.post("/poststop", identity(), format="json")
    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["deleted"]
    assert_matches_schema(schema, "/poststop", stopped)

    refused = hub.post("/prespawn", prespawn_body(profile="nope", namespace="elsewhere"), format="json")
    assert refused.status_code == 400
    assert set(refused.json()["fields"]) == {"profile", "k8s_namespace"}
    assert_matches_schema(schema, "/prespawn", refused)
    for path in ENDPOINTS:
        missing = hub.post(path, {"server_name": ""}, format="json")
        assert missing.status_code == 400
        assert_matches_schema(schema, path, missing)


def test_the_hub_package_reads_the_keys_the_schema_declares() -> None:
    components = _schema()["components"]["schemas"]
    prespawn = components["PrespawnOutput"]
    # A dry run's answer adds what the hub never reads: the manifests and who checked them.
    dry_run_only = ("objects", "dry_run")
    assert tuple(key for key in prespawn["properties"] if key not in dry_run_only) == reply_keys.PRESPAWN_KEYS
    assert set(dry_run_only) <= set(prespawn["properties"])
    assert set(dry_run_only).isdisjoint(prespawn.get("required", []))
    # What reply_version 2 adds is declared, and optional: version 1 leaves it out.
    assert {reply_keys.IMAGE, reply_keys.KUBESPAWNER_OVERRIDE}.isdisjoint(prespawn.get("required", []))
    resources = prespawn["properties"][reply_keys.RESOURCES]
    resources = components[(resources.get("$ref") or resources["allOf"][0]["$ref"]).rsplit("/", 1)[-1]]
    assert tuple(resources["properties"]) == reply_keys.RESOURCE_KEYS
    # A machine type's traits are declared one by one; a profile's extra traits are any others.
    override = prespawn["properties"][reply_keys.KUBESPAWNER_OVERRIDE]
    override = components[(override.get("$ref") or override["allOf"][0]["$ref"]).rsplit("/", 1)[-1]]
    assert tuple(override["properties"]) == reply_keys.OVERRIDE_KEYS
    assert not override.get("required")
    assert isinstance(override["additionalProperties"], dict)
    options = components["OptionsOutput"]["properties"]
    assert {reply_keys.HTML, reply_keys.PROFILES} <= set(options)
    profile = components[options[reply_keys.PROFILES]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert {reply_keys.PROFILE_SLUG, reply_keys.PROFILE_IMAGE} <= set(profile["properties"])
