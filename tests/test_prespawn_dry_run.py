"""POST /prespawn with "dry_run": true: validated like a spawn, answered with the manifests, nothing made or recorded."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from kubernetes import client as k8s

from inventory.demo import DEMO_LABEL, load_demo
from inventory.models import GafferGraph, NotebookVolume, ServiceAccount
from kube.provision import ObjectRef, read_config_source
from spawning import provisioning
from spawning.models import RememberedChoices, SpawnRecord
from spawning.provisioning import REDACTED
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    make_rule,
    offer_namespace,
    our_objects,
    prespawn_body,
)


@pytest.fixture(autouse=True)
def _hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def no_cluster(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.KUBECONFIG = None
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def _demo_body(**extra: object) -> dict[str, object]:
    body = prespawn_body(
        profile="gaffer-pyspark",
        namespace="user-alice",
        hdfs="default:demo-hdfs",
        gaffer_graph="default:demo-graph",
        k8s_service_account="",
    )
    return {**body, "groups": ["data-science"], "dry_run": True, **extra}


def _names(objects: list[dict]) -> list[tuple[str, str, str]]:
    return sorted((o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects)


@pytest.mark.django_db
def test_without_a_cluster_the_demo_dry_run_answers_the_reply_and_the_manifests_and_records_nothing(
    no_cluster: None,
) -> None:
    load_demo()
    response = hub_client().post("/prespawn", _demo_body(), format="json")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["dry_run"] == "local"
    assert answer["namespace"] == "user-alice"
    assert answer["env"]["HADOOP_USER_NAME"] == "alice"
    assert answer["env"]["GAFFER_REST_API_URL"] == "http://demo-graph-api.default.svc:80/rest"
    assert _names(answer["objects"]) == [
        ("ConfigMap", "user-alice", "jhub-gaffer-graph-config-alice"),
        ("ConfigMap", "user-alice", "jhub-gaffer-schema-alice"),
        ("ConfigMap", "user-alice", "jhub-hadoop-config-alice"),
        ("ConfigMap", "user-alice", "jhub-spark-config-alice"),
        ("Ingress", "user-alice", "jhub-spark-ui-alice"),
        ("Secret", "user-alice", "jhub-gaffer-store-alice"),
        ("Service", "user-alice", "jupyter-alice"),
    ]
    by_name = {o["metadata"]["name"]: o for o in answer["objects"]}
    # The graph lives in "default": its files are copied as the sync recorded them.
    graph = GafferGraph.objects.get(key="default:demo-graph")
    assert by_name["jhub-gaffer-graph-config-alice"]["data"] == graph.graph_config_files
    assert by_name["jhub-gaffer-schema-alice"]["data"] == graph.schema_files
    assert "fs.defaultFS" in by_name["jhub-hadoop-config-alice"]["data"]["core-site.xml"]
    assert "hdfs://demo-hdfs-namenodes.default.svc:8020" in by_name["jhub-hadoop-config-alice"]["data"]["core-site.xml"]
    # Every volume the reply mounts is one of the objects.
    mounted = {v.get("configMap", {}).get("name") or v.get("secret", {}).get("secretName") for v in answer["volumes"]}
    assert mounted <= set(by_name)

    assert SpawnRecord.objects.count() == 0
    assert RememberedChoices.objects.count() == 0


@pytest.mark.django_db
def test_the_demo_stand_ins_are_marked_as_demo_and_offered(no_cluster: None) -> None:
    load_demo()
    for model in (GafferGraph, ServiceAccount, NotebookVolume):
        rows = list(model.objects.offerable())
        assert rows, model
        assert all(row.labels.get(DEMO_LABEL) == "true" and "Demo data" in row.description for row in rows), model
    response = hub_client().post(
        "/options", {"username": "alice", "server_name": "", "groups": ["data-science"]}, format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert {n["name"] for n in data["namespaces"]} == {"user-alice", "default", "analytics"}
    assert {g["id"] for g in data["gaffer_graphs"]} == {"default:demo-graph"}
    assert {h["id"] for h in data["hdfs"]} == {"default:demo-hdfs", "analytics:secure-hdfs"}
    assert {a["id"] for a in data["service_accounts"]} == {"default:demo-notebook"}
    assert {v["id"] for v in data["volumes"]} == {"user-alice:claim-alice"}


@pytest.mark.django_db
def test_a_refused_dry_run_names_the_field_and_records_nothing(no_cluster: None) -> None:
    load_demo()
    body = _demo_body()
    body["user_options"]["k8s_namespace"] = ["kube-system"]  # type: ignore[index]
    response = hub_client().post("/prespawn", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid",
        "fields": {"k8s_namespace": ["You may not use the namespace 'kube-system'."]},
    }
    assert SpawnRecord.objects.count() == 0


@pytest.mark.django_db
def test_the_schema_declares_dry_run_and_objects(client: Client) -> None:
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    components = schema["components"]["schemas"]
    assert components["PrespawnInput"]["properties"]["dry_run"]["type"] == "boolean"
    assert "objects" in components["PrespawnOutput"]["properties"]
    assert "dry_run" in components["PrespawnOutput"]["properties"]


def _cluster_inventory(namespace: str, graph_namespace: str) -> None:
    offer_namespace(namespace)
    make_preset(default=True)
    profile = make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=True)
    hdfs = make_hdfs(namespace, "hdfs")
    graph = make_graph(graph_namespace, "graph")
    make_rule("all", everyone=True, profiles=[profile], hdfs_instances=[hdfs], gaffer_graphs=[graph])


def _seed_graph(core_v1: k8s.CoreV1Api, namespace: str) -> None:
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "graph-graph-config"}, "data": {"graphConfig.json": '{"graphId": "g"}'}}
    )
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "graph-schema"}, "data": {"types.json": "{}"}}
    )
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "graph-store-properties"}, "stringData": {"store.properties": "password=s3"}}
    )


@pytest.mark.kube
@pytest.mark.django_db
def test_with_a_cluster_the_apiserver_dry_runs_every_manifest_and_nothing_is_made(
    kube, core_v1: k8s.CoreV1Api, make_namespace
) -> None:
    namespace, graph_namespace = make_namespace(), make_namespace()
    _seed_graph(core_v1, graph_namespace)
    _cluster_inventory(namespace, graph_namespace)
    body = prespawn_body(
        profile="full", namespace=namespace, hdfs=f"{namespace}:hdfs", gaffer_graph=f"{graph_namespace}:graph"
    )

    response = hub_client().post("/prespawn", {**body, "dry_run": True}, format="json")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["dry_run"] == "server"
    assert our_objects(core_v1, namespace) == []
    assert SpawnRecord.objects.count() == 0
    by_name = {o["metadata"]["name"]: o for o in answer["objects"]}
    # Read from the cluster and copied; the Secret's keys are shown, its values are not.
    assert by_name["jhub-gaffer-graph-config-alice"]["data"] == {"graphConfig.json": '{"graphId": "g"}'}
    assert by_name["jhub-gaffer-store-alice"]["data"] == {"store.properties": REDACTED}
    source = read_config_source(ObjectRef("Secret", graph_namespace, "graph-store-properties"))
    assert source.data  # the real Secret has a value the answer did not give away

    # A real spawn applies exactly the objects the dry run named, and replies the same.
    real = hub_client().post("/prespawn", body, format="json")
    assert real.status_code == 200, real.content
    dry_reply = {k: v for k, v in answer.items() if k not in {"objects", "dry_run"}}
    assert real.json() == dry_reply
    expected = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in answer["objects"])
    assert our_objects(core_v1, namespace) == expected


@pytest.mark.kube
@pytest.mark.django_db
def test_a_manifest_the_apiserver_refuses_shows_in_the_dry_run(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    offer_namespace(namespace)
    make_preset(default=True)
    # Saved past validation (create() skips full_clean): only the apiserver's schema check catches it.
    make_profile("spark", enable_spark=True, spark_ingress_host="spark_{{USERNAME}}.example.org")
    body = {**prespawn_body(profile="spark", namespace=namespace), "dry_run": True}

    response = hub_client().post("/prespawn", body, format="json")

    assert response.status_code == 502, response.content
    assert response.json()["error"] == "cluster_rejected"
    assert "Ingress" in response.json()["detail"]
    assert our_objects(core_v1, namespace) == []
    assert SpawnRecord.objects.count() == 0


@pytest.mark.django_db
def test_the_admin_preview_start_shows_the_dry_run(no_cluster: None) -> None:
    load_demo()
    admin = get_user_model().objects.create_superuser("op", "op@example.org", "pw-op-12345")
    browser = Client()
    browser.force_login(admin)
    query = "?username=alice&groups=data-science&default_namespace=user-alice"
    form = {
        "profile": "gaffer-pyspark",
        "k8s_namespace": "default",
        "hdfs": "default:demo-hdfs",
        "gaffer_graph": "",
        "k8s_service_account": "default:demo-notebook",
    }
    page = browser.post(f"/admin/preview/{query}", form)
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="op-preview-dry-run"' in text
    assert "jhub-hadoop-config-alice" in text
    assert "&quot;serviceAccount&quot;: &quot;demo-notebook&quot;" in text
    assert SpawnRecord.objects.count() == 0

    form["k8s_namespace"] = "kube-system"
    refused = browser.post(f"/admin/preview/{query}", form).content.decode()
    assert 'id="op-preview-refused"' in refused
    assert "k8s_namespace: You may not use the namespace" in refused


def test_dry_run_redacts_only_secrets() -> None:
    config_map = {"kind": "ConfigMap", "data": {"a": "1"}}
    secret = {"kind": "Secret", "data": {"password": "c2VjcmV0"}, "type": "Opaque"}
    assert provisioning._redacted(config_map) == config_map
    assert provisioning._redacted(secret) == {"kind": "Secret", "data": {"password": REDACTED}, "type": "Opaque"}
