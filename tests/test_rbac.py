"""deploy/rbac.yaml grants exactly what the portal's code uses in the cluster.

Each test binds the project's ClusterRole (as written, or with one verb taken
out) to a fresh service account, takes a token for it (TokenRequest), and runs
everything the portal does with that token alone: a sync round and a watch of
every kind, /prespawn for a profile with HDFS + Gaffer + Spark, /poststop and
the orphan sweep. The role as written must let all of it succeed; each verb
taken out must make some step fail with a clear message, never a crash.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from inventory.models import SyncRound
from inventory.sync import sync_full_round
from kube.client import KubeError, reset_api_client
from kube.discovery import Kind, list_objects, watch_objects
from spawning.cleanup import sweep_orphans
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_preset,
    make_profile,
    offer_namespace,
    our_objects,
    prespawn_body,
)
from tests.plans import create_graph

pytestmark = [pytest.mark.kube, pytest.mark.django_db]

RBAC_FILE = Path(__file__).resolve().parent.parent / "deploy" / "rbac.yaml"


def _role_rules() -> list[dict[str, Any]]:
    role = next(d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d["kind"] == "ClusterRole")
    return role["rules"]


def _without(rule_index: int, verb: str) -> list[dict[str, Any]]:
    rules = copy.deepcopy(_role_rules())
    rules[rule_index]["verbs"].remove(verb)
    if not rules[rule_index]["verbs"]:
        del rules[rule_index]
    return rules


def _variants() -> list[Any]:
    found = []
    for index, rule in enumerate(_role_rules()):
        for verb in rule["verbs"]:
            label = f"{'/'.join(rule['apiGroups']) or 'core'}:{','.join(rule['resources'])}-{verb}"
            found.append(pytest.param(index, verb, id=label))
    return found


class Seeded:
    """A notebook namespace, a graph namespace, and what the portal should find there."""

    def __init__(self, notebook_ns: str, graph_ns: str) -> None:
        self.notebook_ns = notebook_ns
        self.graph_ns = graph_ns


@pytest.fixture
def seeded(kube, core_v1, make_namespace) -> Seeded:
    notebook_ns, graph_ns = make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    gaffer = {"app.kubernetes.io/name": "gaffer", "app.kubernetes.io/instance": "graph"}
    core_v1.create_namespaced_service(
        graph_ns,
        {
            "metadata": {"name": "graph-api", "labels": {**gaffer, "app.kubernetes.io/component": "api"}},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        },
    )
    core_v1.create_namespaced_service(
        graph_ns,
        {
            "metadata": {
                "name": "lake-namenode",
                "labels": {
                    "app.kubernetes.io/name": "hdfs",
                    "app.kubernetes.io/component": "namenode",
                    "app.kubernetes.io/instance": "lake",
                },
            },
            "spec": {"ports": [{"name": "client-rpc", "port": 8020}]},
        },
    )
    core_v1.create_namespaced_service_account(
        notebook_ns,
        {
            "metadata": {
                "name": "analyst",
                "labels": {"hub.jupyter.org/notebook-service-account": "true"},
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/analyst"},
            }
        },
    )
    # The inventory as an admin's sync leaves it, so later steps have rows to
    # work with even when the restricted sync step is the one that fails.
    sync_round, _ = sync_full_round()
    assert sync_round.status == SyncRound.Status.COMPLETED, sync_round.error
    offer_namespace(notebook_ns)
    make_preset(default=True)
    make_profile(
        "everything",
        enable_hdfs=True,
        enable_gaffer=True,
        enable_spark=True,
        spark_ingress_host="{{USERNAME}}.spark.example.org",
        spark_ingress_path="/spark",
    )
    return Seeded(notebook_ns, graph_ns)


@pytest.fixture
def portal_token(kube_cluster, core_v1, settings, tmp_path) -> Iterator[Any]:
    """Returns a function that binds the given rules to a fresh service account and
    points the portal at the cluster with only that account's token."""
    rbac = k8s.RbacAuthorizationV1Api(kube_cluster.api_client())
    made: list[str] = []

    def bind(rules: list[dict[str, Any]], namespace: str) -> None:
        name = f"options-portal-test-{secrets.token_hex(4)}"
        made.append(name)
        core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "options-portal"}})
        rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": "options-portal", "namespace": namespace}],
            }
        )
        token = core_v1.create_namespaced_service_account_token(
            "options-portal",
            namespace,
            {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600}},
        ).status.token
        kubeconfig = tmp_path / f"{name}.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {"server": kube_cluster.server, "certificate-authority": kube_cluster.ca_file},
                        }
                    ],
                    "users": [{"name": "portal", "user": {"token": token}}],
                    "contexts": [{"name": "portal", "context": {"cluster": "test", "user": "portal"}}],
                    "current-context": "portal",
                }
            )
        )
        settings.KUBECONFIG = str(kubeconfig)
        settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
        reset_api_client()

    yield bind
    reset_api_client()
    for name in made:
        rbac.delete_cluster_role_binding(name, _preload_content=False)
        rbac.delete_cluster_role(name, _preload_content=False)


def _run_everything(seeded: Seeded, core_v1: k8s.CoreV1Api) -> tuple[str, str] | None:
    """Every cluster operation of the portal; the first step that fails, with its message."""
    sync_round, _ = sync_full_round()
    if sync_round.status != SyncRound.Status.COMPLETED:
        return "sync", sync_round.error
    for kind in Kind:
        try:
            listing = list_objects(kind)
            for _ in watch_objects(kind, resource_version=listing.resource_version, timeout_seconds=1):
                pass
        except KubeError as exc:
            return f"watch {kind}", str(exc)

    hub = hub_client()
    body = prespawn_body(
        profile="everything",
        namespace=seeded.notebook_ns,
        hdfs=f"{seeded.graph_ns}:lake",
        gaffer_graph=f"{seeded.graph_ns}:graph",
        k8s_service_account=f"{seeded.notebook_ns}:analyst",
    )
    response = hub.post("/prespawn", body, format="json")
    if response.status_code != 200:
        return "prespawn", f"{response.status_code} {response.json()}"
    made = our_objects(core_v1, seeded.notebook_ns)
    expected = {"ConfigMap", "Secret", "Service", "Ingress"}
    assert {item.split("/")[0] for item in made} == expected, made

    identity = {k: body[k] for k in ("username", "server_name", "pod_name", "default_namespace")}
    response = hub.post("/poststop", identity, format="json")
    if response.status_code != 200:
        return "poststop", f"{response.status_code} {response.json()}"
    assert our_objects(core_v1, seeded.notebook_ns) == []

    response = hub.post("/prespawn", {**body, "server_name": "second"}, format="json")
    assert response.status_code == 200, response.json()
    try:
        sweep_orphans(grace_seconds=-1)
    except KubeError as exc:
        return "sweep", str(exc)
    assert our_objects(core_v1, seeded.notebook_ns) == []
    return None


def test_the_role_as_written_is_enough_for_everything(seeded, portal_token, core_v1, namespace) -> None:
    portal_token(_role_rules(), namespace)
    assert _run_everything(seeded, core_v1) is None


@pytest.mark.parametrize(("rule_index", "verb"), _variants())
def test_every_verb_the_role_grants_is_needed(seeded, portal_token, core_v1, namespace, rule_index, verb) -> None:
    portal_token(_without(rule_index, verb), namespace)
    failed = _run_everything(seeded, core_v1)
    assert failed is not None, f"nothing failed without {verb}: the role grants more than the code uses"
    step, message = failed
    assert "forbidden" in message.lower() or "not allowed" in message.lower(), (step, message)
