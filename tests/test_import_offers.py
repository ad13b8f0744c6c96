"""After import_config and a sync, /options offers each user what the original offered them.

The cluster holds the objects the original discovered, labelled as its charts
label them; the expected tables below are worked out from the original's rules
(its namespaces.js, hdfs.js, gaffer-graphs.js, service-accounts.js and
volumes.js), not from the portal's output:

- namespaces: the static ones whose list is empty/null or names the user, plus
  every templated one filled with the username, kept only if they exist;
- HDFS: every discovered instance whose static twin (same id) is absent or has
  no/empty users or names the user, plus every static entry with no discovered
  twin that has a namenodeClientRpcUrl and whose users allow the user;
- graphs: the same, where "discovered" means its store-properties Secret
  exists, and a static entry needs no URL;
- service accounts: labelled ones in the user's namespaces whose
  hub.jupyter.org/users annotation is absent or names the user;
- volumes: notebook-volume claims labelled with the username, in the user's namespaces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from inventory.models import GafferGraph, HdfsInstance
from inventory.sync import sync_full_round
from spawning.snapshot import forget_snapshot
from tests.hubapi import TOKEN, hub_client

pytestmark = [pytest.mark.kube, pytest.mark.django_db]

FIXTURES = Path(__file__).parent / "fixtures"
USERS = ("alice", "bob", "admin", "carol")

# The namespaces this module makes (kube-system and default exist in every cluster). Other
# tests' objects live in their own random namespaces; offers are compared within these.
MADE_NAMESPACES = ("gaffer-data", "analytics", "jhub", "user-alice", "user-bob", "scratch-alice")
OURS = (*MADE_NAMESPACES, "kube-system", "default", "legacy", "lab")


def _labels(name: str, component: str, instance: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}
    if instance:
        labels["app.kubernetes.io/instance"] = instance
    return labels


def _create(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _hdfs(core: k8s.CoreV1Api, ns: str, instance: str) -> None:
    body = {
        "metadata": {"name": f"{instance}-namenodes", "labels": _labels("hdfs", "namenode", instance)},
        "spec": {"ports": [{"name": "http", "port": 9870}, {"name": "client-rpc", "port": 8020}]},
    }
    _create(core.create_namespaced_service, ns, body)


def _graph(core: k8s.CoreV1Api, ns: str, instance: str, *, api: bool, config: bool, secret: bool) -> None:
    if api:
        body = {
            "metadata": {"name": f"{instance}-gaffer-api", "labels": _labels("gaffer", "api", instance)},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }
        _create(core.create_namespaced_service, ns, body)
    if config:
        body = {
            "metadata": {"name": f"{instance}-graph-config", "labels": _labels("gaffer", "graph-config", instance)},
            "data": {"graphConfig.json": json.dumps({"graphId": instance, "description": f"The {instance} graph"})},
        }
        _create(core.create_namespaced_config_map, ns, body)
    if secret:
        body = {
            "metadata": {
                "name": f"{instance}-store-properties",
                "labels": _labels("gaffer", "store-properties", instance),
            },
            "stringData": {"store.properties": "gaffer.store.class=MapStore"},
        }
        _create(core.create_namespaced_secret, ns, body)


def _account(core: k8s.CoreV1Api, ns: str, name: str, *, users: str | None = None, labelled: bool = True) -> None:
    annotations = {"eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/{name}"}
    if users is not None:
        annotations["hub.jupyter.org/users"] = users
    labels = {"hub.jupyter.org/notebook-service-account": "true"} if labelled else {}
    _create(
        core.create_namespaced_service_account,
        ns,
        {"metadata": {"name": name, "labels": labels, "annotations": annotations}},
    )


def _claim(core: k8s.CoreV1Api, ns: str, name: str, username: str) -> None:
    labels = {
        **_labels("jupyterhub", "notebook-volume"),
        "hub.jupyter.org/username": username,
        "hub.jupyter.org/servername": "",
        "hub.jupyter.org/volume-name": name,
    }
    body = {
        "metadata": {"name": name, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    _create(core.create_namespaced_persistent_volume_claim, ns, body)


@pytest.fixture(scope="module")
def cluster_objects(kube_cluster: Any) -> Iterator[None]:
    """What a Gaffer deployment's cluster holds, made once for this module."""
    api = kube_cluster.api_client()
    core = k8s.CoreV1Api(api)
    for ns in MADE_NAMESPACES:
        _create(core.create_namespace, {"metadata": {"name": ns}})
    _hdfs(core, "gaffer-data", "road-traffic-hdfs")
    _hdfs(core, "gaffer-data", "open-hdfs")
    _hdfs(core, "analytics", "archive-hdfs")
    _graph(core, "gaffer-data", "road-traffic", api=True, config=True, secret=True)
    # A store Secret and a graph config but no REST API Service: the original offered it.
    _graph(core, "gaffer-data", "basic", api=False, config=True, secret=True)
    # No store Secret: not offered.
    _graph(core, "gaffer-data", "no-store", api=True, config=True, secret=False)
    # No store Secret, but graphs.yaml lists it: offered as the static entry.
    _graph(core, "gaffer-data", "staged", api=True, config=False, secret=False)
    _account(core, "gaffer-data", "reader")
    _account(core, "gaffer-data", "alice-only", users="alice")
    _account(core, "jhub", "jhub-sa")
    _account(core, "user-bob", "bob-sa", users="bob,admin")
    _account(core, "kube-system", "admin-sa", users="admin")
    _account(core, "analytics", "unlabelled", labelled=False)
    _claim(core, "user-alice", "claim-alice", "alice")
    _claim(core, "jhub", "claim-alice-jhub", "alice")
    _claim(core, "gaffer-data", "claim-bob", "bob")
    _claim(core, "user-bob", "claim-bob-home", "bob")
    _claim(core, "analytics", "claim-carol", "carol")
    # Bob's claim in a namespace bob may not use.
    _claim(core, "user-alice", "claim-bob-in-alice", "bob")
    yield
    core.delete_namespaced_service_account("admin-sa", "kube-system")
    for ns in MADE_NAMESPACES:
        core.delete_namespace(ns, _preload_content=False)
    api.close()


@pytest.fixture
def synced(kube: Any, cluster_objects: None, settings: Any) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
    _round, outcome = sync_full_round()
    assert not outcome.errors, outcome.errors
    forget_snapshot()


def _ours(key: str) -> bool:
    namespace, colon, _ = key.partition(":")
    return not colon or namespace in OURS


def offers(username: str) -> dict[str, list[str]]:
    forget_snapshot()
    reply = hub_client().post("/options", {"username": username, "server_name": ""}, format="json")
    assert reply.status_code == 200, reply.content
    data = reply.json()
    return {
        "namespaces": sorted(n["name"] for n in data["namespaces"]),
        "hdfs": sorted(i["id"] for i in data["hdfs"] if _ours(i["id"])),
        "graphs": sorted(g["id"] for g in data["gaffer_graphs"] if _ours(g["id"])),
        "service_accounts": sorted(a["id"] for a in data["service_accounts"] if _ours(a["id"])),
        "volumes": sorted(v["id"] for v in data["volumes"] if _ours(v["id"])),
        "profiles": [p["slug"] for p in data["profiles"]],
    }


def import_config(*args: str) -> str:
    out = StringIO()
    call_command("import_config", *args, stdout=out)
    return out.getvalue()


# From the sample-shaped conf/ (tests/fixtures/original-conf) by the original's rules.
SAMPLE_CONF_EXPECTED: dict[str, dict[str, list[str]]] = {
    "alice": {
        # retired-team is hers but does not exist.
        "namespaces": ["analytics", "gaffer-data", "jhub", "scratch-alice", "user-alice"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "gaffer-data:road-traffic-hdfs", "legacy:hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:road-traffic", "gaffer-data:staged", "simple-graph"],
        "service_accounts": ["gaffer-data:alice-only", "gaffer-data:reader", "jhub:jhub-sa"],
        "volumes": ["jhub:claim-alice-jhub", "user-alice:claim-alice"],
    },
    "bob": {
        # scratch-bob does not exist; analytics:pending-hdfs has no URL and is not discovered.
        "namespaces": ["analytics", "gaffer-data", "user-bob"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "legacy:hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:road-traffic", "gaffer-data:staged", "simple-graph"],
        "service_accounts": ["gaffer-data:reader", "user-bob:bob-sa"],
        "volumes": ["gaffer-data:claim-bob", "user-bob:claim-bob-home"],
    },
    "admin": {
        "namespaces": ["analytics", "gaffer-data", "kube-system"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "lab:admin-hdfs", "legacy:hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:staged", "secret", "simple-graph"],
        # bob-sa names admin, but admin has no user-bob namespace.
        "service_accounts": ["gaffer-data:reader", "kube-system:admin-sa"],
        "volumes": [],
    },
    "carol": {
        "namespaces": ["analytics", "gaffer-data"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "legacy:hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:staged", "simple-graph"],
        "service_accounts": ["gaffer-data:reader"],
        "volumes": ["analytics:claim-carol"],
    },
}

# From the chart's default values: `default` for everyone plus user-<name>; no static HDFS or graphs.
CHART_VALUES_EXPECTED: dict[str, dict[str, list[str]]] = {
    "alice": {
        "namespaces": ["default", "user-alice"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "gaffer-data:road-traffic-hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:road-traffic"],
        "service_accounts": [],
        "volumes": ["user-alice:claim-alice"],
    },
    "bob": {
        "namespaces": ["default", "user-bob"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "gaffer-data:road-traffic-hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:road-traffic"],
        "service_accounts": ["user-bob:bob-sa"],
        "volumes": ["user-bob:claim-bob-home"],
    },
    "admin": {
        "namespaces": ["default"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "gaffer-data:road-traffic-hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:road-traffic"],
        "service_accounts": [],
        "volumes": [],
    },
    "carol": {
        "namespaces": ["default"],
        "hdfs": ["analytics:archive-hdfs", "gaffer-data:open-hdfs", "gaffer-data:road-traffic-hdfs"],
        "graphs": ["gaffer-data:basic", "gaffer-data:road-traffic"],
        "service_accounts": [],
        "volumes": [],
    },
}


@pytest.mark.parametrize("order", ["sync first", "import first"])
def test_sample_conf_offers_each_user_what_the_original_did(synced: None, order: str) -> None:
    if order == "import first":
        # An import before any sync must come to the same offers once the sync has run.
        HdfsInstance.objects.all().delete()
        GafferGraph.objects.all().delete()
        import_config(str(FIXTURES / "original-conf"))
        sync_full_round()
    else:
        import_config(str(FIXTURES / "original-conf"))
    for username in USERS:
        assert offers(username) == {**SAMPLE_CONF_EXPECTED[username], "profiles": ["minimal", "gaffer-pyspark"]}, (
            username
        )


def test_chart_values_offer_each_user_what_the_original_did(synced: None) -> None:
    output = import_config("--helm-values", str(FIXTURES / "gaffer-jhub-values.yaml"))
    assert "Total: 0 created, 0 updated" not in output
    for username in USERS:
        assert offers(username) == {**CHART_VALUES_EXPECTED[username], "profiles": ["minimal", "gaffer-pyspark"]}, (
            username
        )
    assert "Total: 0 created, 0 updated" in import_config("--helm-values", str(FIXTURES / "gaffer-jhub-values.yaml"))


def test_a_static_graph_is_offered_again_when_its_discovered_twin_loses_its_store(
    synced: None, kube_cluster: Any
) -> None:
    """road-traffic is discovered; without its store Secret the original offered the static entry instead."""
    import_config(str(FIXTURES / "original-conf"))
    api = kube_cluster.api_client()
    core = k8s.CoreV1Api(api)
    core.delete_namespaced_secret("road-traffic-store-properties", "gaffer-data")
    try:
        sync_full_round()
        graph = GafferGraph.objects.get(key="gaffer-data:road-traffic")
        assert graph.uses_static_entry
        assert graph.url == "http://road-traffic-gaffer-api.gaffer-data.svc:80/rest/latest"
        assert graph.mounted_files() == ("", "", "")
        assert "gaffer-data:road-traffic" in offers("alice")["graphs"]
        assert "gaffer-data:road-traffic" not in offers("carol")["graphs"]
    finally:
        _graph(core, "gaffer-data", "road-traffic", api=False, config=False, secret=True)
        api.close()


def _prespawn(username: str, graph: str) -> Any:
    body = {
        "username": username,
        "server_name": "",
        "pod_name": f"jupyter-{username}",
        "default_namespace": "gaffer-data",
        "profile": "gaffer-pyspark",
        "user_options": {"profile": ["gaffer-pyspark"], "k8s_namespace": ["gaffer-data"], "gaffer_graph": [graph]},
        "reply_version": 1,
    }
    return hub_client().post("/prespawn", body, format="json")


def test_a_static_graph_spawns_with_its_rest_api_and_no_files(synced: None, kube_cluster: Any) -> None:
    """A static graph has no ConfigMaps or Secret to mount: only its restApi, which the original failed to pass on."""
    import_config(str(FIXTURES / "original-conf"))
    api = kube_cluster.api_client()
    core = k8s.CoreV1Api(api)
    try:
        reply = _prespawn("alice", "simple-graph")
        assert reply.status_code == 200, reply.content
        data = reply.json()
        assert data["env"]["GAFFER_REST_API_URL"] == "http://simple-gaffer-api.gaffer-data.svc:80/rest/latest"
        assert not [v for v in data["volumes"] if v["name"].startswith("jhub-gaffer")]
        assert not [m for m in data["volumeMounts"] if m["mountPath"].startswith("/etc/gaffer/")]
        made = core.list_namespaced_config_map(
            "gaffer-data", label_selector="app.kubernetes.io/name=jhub-notebook-config"
        ).items
        assert not [cm for cm in made if cm.metadata.name.startswith("jhub-gaffer")]

        # restApi: null — offered to admin alone, spawned without the variable rather than with an empty one.
        refused = _prespawn("alice", "secret")
        assert refused.status_code == 400, refused.content
        assert "gaffer_graph" in refused.json()["fields"]
        reply = _prespawn("admin", "secret")
        assert reply.status_code == 200, reply.content
        assert "GAFFER_REST_API_URL" not in reply.json()["env"]
    finally:
        for username in ("alice", "admin"):
            hub_client().post("/poststop", {"username": username, "server_name": ""}, format="json")
        api.close()
