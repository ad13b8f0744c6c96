"""The hub package's pieces on their own: error messages, form data, and applying a /prespawn reply.

The whole path through JupyterHub is in test_hub_e2e.py; these are the cases it does not reach.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from optionsportal_hub import OptionsPortalError, OptionsPortalSpawner, OriginalShapeSpawner, PortalClient
from optionsportal_hub.client import error_for_reply
from optionsportal_hub.spawner import keep_form_data

from tests.hubsupport import free_port


def test_refused_choices_read_as_a_sentence() -> None:
    body = json.dumps({"error": "invalid", "fields": {"resources_cpu": ["must be ≤ 2"]}}).encode()
    error = error_for_reply(400, body, what="preparing your server")
    assert error.jupyterhub_message == "Your choices were refused: resources_cpu: must be ≤ 2"
    assert error.status_code == 400
    assert error.fields == {"resources_cpu": ["must be ≤ 2"]}


def test_other_portal_errors_say_what_to_do() -> None:
    unauthorized = error_for_reply(401, b'{"error": "not_authenticated"}', what="loading the spawn form")
    assert "token" in unauthorized.jupyterhub_message
    busy = error_for_reply(503, b'{"error": "cluster_unavailable", "detail": "apiserver down"}', what="x")
    assert "try again shortly" in busy.jupyterhub_message and "apiserver down" in busy.jupyterhub_message
    broken = error_for_reply(500, b"<html>Server Error</html>", what="x")
    assert "HTTP 500" in broken.jupyterhub_message


def test_unreachable_portal_is_a_readable_error() -> None:
    client = PortalClient(base_url=f"http://127.0.0.1:{free_port()}", token="t", timeout=5)
    with pytest.raises(OptionsPortalError) as caught:
        asyncio.run(client.post("/options", {}, what="loading the spawn form"))
    assert "cannot be reached" in caught.value.jupyterhub_message


def test_form_data_is_kept_as_lists_of_strings() -> None:
    formdata = {"profile": ["gaffer"], "resources_cpu": ["0.5"], "upload_file": [b"x"]}
    assert keep_form_data(formdata) == {"profile": ["gaffer"], "resources_cpu": ["0.5"]}


def use_kubeconfig(monkeypatch, path: str) -> None:
    """KubeSpawner loads a kubeconfig when constructed; kubernetes_asyncio read $KUBECONFIG at import."""
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)


REPLY = {
    "namespace": "team-a",
    "image": "registry.example.org/nb:2",
    "resources": {
        "cpu_guarantee": 1.5,
        "cpu_limit": 1.5,
        "mem_guarantee": "2048M",
        "mem_limit": "2048M",
        "storage_capacity": "5G",
    },
    "env": {"SETTINGS_JSON": '{"a": 1}', "HADOOP_USER_NAME": "alice"},
    "labels": {"optionsportal.io/role": "notebook"},
    "serviceAccount": "analyst",
    "storage_extra_labels": {"hub.jupyter.org/volume-name": "scratch"},
    "volumes": [{"name": "jhub-hadoop-config", "configMap": {"name": "jhub-hadoop-config-alice"}}],
    "volumeMounts": [{"name": "jhub-hadoop-config", "mountPath": "/etc/hadoop/conf", "readOnly": True}],
}


def test_a_reply_is_applied_through_traits_and_undone_for_the_next_spawn(kube_cluster, monkeypatch) -> None:
    use_kubeconfig(monkeypatch, kube_cluster.kubeconfig)

    async def run() -> None:
        spawner = OptionsPortalSpawner(
            _mock=True,
            namespace="hub",
            volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
            volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}],
        )
        assert spawner.options_form == spawner.fetch_options_form
        assert spawner.default_namespace == "hub"
        for _ in range(2):  # a second spawn must not add the volumes twice
            spawner.restore_baseline()
            spawner.apply_prespawn_reply(REPLY)
        assert spawner.namespace == "team-a"
        assert spawner.dns_name.endswith(".team-a.svc.cluster.local")
        assert spawner.default_namespace == "hub"
        pod = await spawner.get_pod_manifest()
        container = pod.spec.containers[0]
        assert container.image == "registry.example.org/nb:2"
        env = {e.name: e.value for e in container.env}
        # KubeSpawner formats env values with the user's properties; the portal's braces survive.
        assert env["SETTINGS_JSON"] == '{"a": 1}'
        assert [v["name"] if isinstance(v, dict) else v.name for v in pod.spec.volumes] == [
            "home",
            "jhub-hadoop-config",
        ]
        assert pod.spec.service_account_name == "analyst"
        assert container.resources.limits == {"cpu": 1.5, "memory": 2048 * 1024 * 1024}
        assert pod.metadata.labels["optionsportal.io/role"] == "notebook"
        pvc = spawner.get_pvc_manifest()
        assert pvc.spec.resources.requests["storage"] == "5G"
        assert pvc.metadata.labels["hub.jupyter.org/volume-name"] == "scratch"

        spawner.restore_baseline()
        assert spawner.namespace == "hub"
        assert len(spawner.volumes) == 1

    asyncio.run(run())


def test_original_shape_sends_no_token_and_no_groups(kube_cluster, monkeypatch) -> None:
    use_kubeconfig(monkeypatch, kube_cluster.kubeconfig)
    monkeypatch.setenv("OPTIONS_PORTAL_HUB_TOKEN", "secret")

    async def run() -> None:
        original = OriginalShapeSpawner(_mock=True, namespace="hub")
        assert original.portal.token == ""
        assert set(original.options_request()) == {"username", "server_name", "pod_name", "default_namespace"}
        assert set(original.prespawn_request({"profile": ["p"]}, "p")) == {
            "username",
            "server_name",
            "pod_name",
            "default_namespace",
            "user_options",
            "profile",
        }
        current = OptionsPortalSpawner(_mock=True, namespace="hub")
        assert current.portal.token == "secret"

    asyncio.run(run())


USER_NODES = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
USER_PURPOSE = {"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_POOL = {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
MACHINE_TYPE_REPLY = {
    **REPLY,
    "resources": {**REPLY["resources"], "cpu_guarantee": 0.5, "mem_guarantee": "1024M"},
    "kubespawner_override": {
        "node_selector": {"pool": "gpu"},
        "tolerations": [GPU_TOLERATION],
        "node_affinity_required": [GPU_POOL],
        "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "cpu_guarantee": 0.5,
        "cpu_limit": 1.5,
        "mem_guarantee": "1024M",
        "mem_limit": "2048M",
    },
}


def test_a_machine_type_keeps_the_hubs_own_placement_and_is_undone_next_spawn(kube_cluster, monkeypatch) -> None:
    """A chart's user-node toleration and node-purpose affinity (Zero to JupyterHub's) hold beside the machine type's."""
    use_kubeconfig(monkeypatch, kube_cluster.kubeconfig)

    async def run() -> None:
        spawner = OptionsPortalSpawner(
            _mock=True, namespace="hub", tolerations=[USER_NODES], node_affinity_required=[USER_PURPOSE]
        )
        spawner.restore_baseline()
        spawner.apply_prespawn_reply(MACHINE_TYPE_REPLY)
        pod = await spawner.get_pod_manifest()
        container = pod.spec.containers[0]
        assert pod.spec.node_selector == {"pool": "gpu"}
        assert [t.to_dict() if hasattr(t, "to_dict") else t for t in pod.spec.tolerations] == [
            {
                "effect": "NoSchedule",
                "key": "hub.jupyter.org/dedicated",
                "operator": "Equal",
                "toleration_seconds": None,
                "value": "user",
            },
            {
                "effect": "NoSchedule",
                "key": "nvidia.com/gpu",
                "operator": "Exists",
                "toleration_seconds": None,
                "value": None,
            },
        ]
        terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        # Terms are ORed: one term holding both, never either alone.
        assert len(terms) == 1
        # KubeSpawner builds the term's model; its expressions stay as given.
        assert [(e["key"], e["values"]) for e in terms[0].match_expressions] == [
            ("hub.jupyter.org/node-purpose", ["user"]),
            ("pool", ["gpu"]),
        ]
        assert container.resources.requests == {"cpu": 0.5, "memory": 1024 * 1024 * 1024, "nvidia.com/gpu": "1"}
        assert container.resources.limits == {"cpu": 1.5, "memory": 2048 * 1024 * 1024, "nvidia.com/gpu": "1"}

        spawner.restore_baseline()
        assert spawner.tolerations == [USER_NODES]
        assert spawner.node_affinity_required == [USER_PURPOSE]
        assert spawner.node_selector == {}
        assert spawner.extra_resource_limits == {}

    asyncio.run(run())
