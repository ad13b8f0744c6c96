"""The test cluster is a real kube-apiserver: objects persist and RBAC is enforced."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kube.client import KubeUnavailable, cluster_info, reset_api_client

pytestmark = pytest.mark.kube


def test_namespace_and_configmap_round_trip(core_v1: k8s.CoreV1Api, namespace: str) -> None:
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "greeting"}, "data": {"hello.txt": "hello, cluster"}}
    )
    read = core_v1.read_namespaced_config_map("greeting", namespace)
    assert read.data == {"hello.txt": "hello, cluster"}
    assert core_v1.read_namespace(namespace).metadata.name == namespace


def test_a_narrow_role_gets_403_outside_it(kube_cluster, core_v1: k8s.CoreV1Api, make_namespace) -> None:
    allowed, other = make_namespace(), make_namespace()
    rbac = k8s.RbacAuthorizationV1Api(kube_cluster.api_client())
    core_v1.create_namespaced_service_account(allowed, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        allowed,
        {
            "metadata": {"name": "configmap-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        allowed,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": allowed}],
        },
    )
    token = core_v1.create_namespaced_service_account_token(
        "reader", allowed, {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600}}
    ).status.token

    narrow = k8s.CoreV1Api(kube_cluster.api_client(token=token))
    assert narrow.list_namespaced_config_map(allowed).items is not None

    with pytest.raises(ApiException) as elsewhere:
        narrow.list_namespaced_config_map(other)
    assert elsewhere.value.status == 403
    with pytest.raises(ApiException) as write:
        narrow.create_namespaced_config_map(allowed, {"metadata": {"name": "nope"}})
    assert write.value.status == 403

    bad = k8s.CoreV1Api(kube_cluster.api_client(token="not-a-token"))
    with pytest.raises(ApiException) as unauthenticated:
        bad.list_namespaced_config_map(allowed)
    assert unauthenticated.value.status == 401


def test_portal_client_reaches_the_cluster(kube) -> None:
    info = cluster_info()
    assert info.version.startswith("v1.20")
    assert info.host == kube.server


def test_portal_client_reports_unreachable_cluster(settings, tmp_path) -> None:
    settings.KUBECONFIG = str(tmp_path / "missing-kubeconfig")
    reset_api_client()
    try:
        with pytest.raises(KubeUnavailable, match="not configured"):
            cluster_info()
    finally:
        reset_api_client()
