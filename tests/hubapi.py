"""Shared building blocks for the hub API tests: an authenticated hub client and inventory rows built directly.

The cluster sync is tested elsewhere; here the inventory is written as the sync
would leave it, and namespaces are also made in the real apiserver when a test
checks what was (or was not) created there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes import client as k8s
from rest_framework.test import APIClient

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    Namespace,
    NamespaceOption,
    NotebookVolume,
    Profile,
    ResourcePreset,
    ServiceAccount,
    Source,
)

TOKEN = "test-hub-token-5b1f"
OUR_OBJECTS = "app.kubernetes.io/name=jhub-notebook-config"


def hub_client(token: str = TOKEN, keyword: str = "token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token}")
    return client


def identity(username: str = "alice", server_name: str = "", **extra: Any) -> dict[str, Any]:
    return {"username": username, "server_name": server_name, "pod_name": "jupyter-alice", **extra}


def prespawn_body(
    *, profile: str, namespace: str, username: str = "alice", server_name: str = "", **options: Any
) -> dict[str, Any]:
    """What the original hub sends: form fields as single-element lists."""
    user_options = {"profile": [profile], "k8s_namespace": [namespace]}
    user_options.update({key: value if isinstance(value, list) else [value] for key, value in options.items()})
    return {
        "username": username,
        "server_name": server_name,
        "pod_name": f"jupyter-{username}",
        "default_namespace": namespace,
        "user_options": user_options,
        "profile": profile,
    }


def offer_namespace(name: str, **option: Any) -> NamespaceOption:
    """A namespace present in the inventory and offered by a NamespaceOption."""
    Namespace.objects.get_or_create(name=name)
    return NamespaceOption.objects.create(pattern=name, **option)


def make_profile(slug: str = "plain", **fields: Any) -> Profile:
    values = {"display_name": slug.title(), "image": f"example.org/{slug}:1"}
    values.update(fields)
    if values.get("enable_spark") and "spark_image" not in values:
        values["spark_image"] = "example.org/spark:3"
    return Profile.objects.create(slug=slug, **values)


def make_preset(slug: str = "small", **fields: Any) -> ResourcePreset:
    return ResourcePreset.objects.create(slug=slug, display_name=slug.title(), **fields)


def make_hdfs(namespace: str, name: str, **fields: Any) -> HdfsInstance:
    return HdfsInstance.objects.create(
        key=f"{namespace}:{name}",
        namespace=namespace,
        name=name,
        observed_url=f"hdfs://{name}-namenodes.{namespace}.svc:9820",
        **fields,
    )


def make_graph(namespace: str, name: str, **fields: Any) -> GafferGraph:
    values: dict[str, Any] = {
        "observed_url": f"http://{name}-api.{namespace}.svc:80/rest",
        "api_service": f"{name}-api",
        "graph_config_map": f"{name}-graph-config",
        "schema_config_map": f"{name}-schema",
        "store_secret": f"{name}-store-properties",
        "labels": {"app.kubernetes.io/instance": name},
    }
    values.update(fields)
    return GafferGraph.objects.create(key=f"{namespace}:{name}", namespace=namespace, name=name, **values)


def make_service_account(namespace: str, name: str, **fields: Any) -> ServiceAccount:
    return ServiceAccount.objects.create(key=f"{namespace}:{name}", namespace=namespace, name=name, **fields)


def make_volume(namespace: str, name: str, owner: str, **fields: Any) -> NotebookVolume:
    values = {"owner_username": owner, "volume_name": name, "capacity": "10Gi", "phase": "Bound"}
    values.update(fields)
    return NotebookVolume.objects.create(key=f"{namespace}:{name}", namespace=namespace, name=name, **values)


def make_rule(name: str, **fields: Any) -> AccessRule:
    related = {key: fields.pop(key) for key in list(fields) if key in _RELATIONS}
    for ceiling in ("max_cpu", "max_spark_cpu"):
        if ceiling in fields and fields[ceiling] is not None:
            fields[ceiling] = Decimal(str(fields[ceiling]))
    rule = AccessRule.objects.create(name=name, **fields)
    for key, items in related.items():
        getattr(rule, key).set(items)
    return rule


_RELATIONS = {
    "profiles",
    "namespaces",
    "hdfs_instances",
    "gaffer_graphs",
    "service_accounts",
    "data_sources",
    "machine_types",
}


def our_objects(core_v1: k8s.CoreV1Api, namespace: str) -> list[str]:
    """Every object carrying our label in the namespace, as kind/name."""
    found = []
    for kind, lister in (
        ("ConfigMap", core_v1.list_namespaced_config_map),
        ("Secret", core_v1.list_namespaced_secret),
        ("Service", core_v1.list_namespaced_service),
    ):
        found += [f"{kind}/{o.metadata.name}" for o in lister(namespace, label_selector=OUR_OBJECTS).items]
    networking = k8s.NetworkingV1Api(core_v1.api_client)
    found += [
        f"Ingress/{o.metadata.name}"
        for o in networking.list_namespaced_ingress(namespace, label_selector=OUR_OBJECTS).items
    ]
    return sorted(found)


def fill_inventory(count: int, *, start: int, prefix: str = "ns") -> None:
    """``count`` of every kind, each also named by an access rule for group ``team``.

    For the tests that show query counts do not grow with the inventory.
    """
    names = [f"{prefix}-{start + i}" for i in range(count)]
    Namespace.objects.bulk_create([Namespace(name=name) for name in names])
    NamespaceOption.objects.bulk_create([NamespaceOption(pattern=name) for name in names])
    HdfsInstance.objects.bulk_create(
        [
            HdfsInstance(key=f"{ns}:hdfs", namespace=ns, name="hdfs", observed_url=f"hdfs://nn.{ns}.svc:8020")
            for ns in names
        ]
    )
    GafferGraph.objects.bulk_create(
        [
            GafferGraph(
                key=f"{ns}:graph",
                namespace=ns,
                name="graph",
                observed_url=f"http://graph-api.{ns}.svc:80/rest",
                store_secret="graph-store-properties",
            )
            for ns in names
        ]
    )
    ServiceAccount.objects.bulk_create(
        [ServiceAccount(key=f"{ns}:sa", namespace=ns, name="sa", observed_users=["alice"]) for ns in names]
    )
    NotebookVolume.objects.bulk_create(
        [NotebookVolume(key=f"{ns}:claim", namespace=ns, name="claim", owner_username="alice") for ns in names]
    )
    rule = AccessRule.objects.create(name=f"{prefix}-rule-{start}", groups=["team"], max_cpu=Decimal("2"))
    rule.namespaces.set(NamespaceOption.objects.filter(pattern__in=names))
    rule.hdfs_instances.set(HdfsInstance.objects.filter(namespace__in=names))
    rule.gaffer_graphs.set(GafferGraph.objects.filter(namespace__in=names))
    rule.service_accounts.set(ServiceAccount.objects.filter(namespace__in=names))


__all__ = [
    "OUR_OBJECTS",
    "TOKEN",
    "Source",
    "fill_inventory",
    "hub_client",
    "identity",
    "make_graph",
    "make_hdfs",
    "make_preset",
    "make_profile",
    "make_rule",
    "make_service_account",
    "make_volume",
    "offer_namespace",
    "our_objects",
    "prespawn_body",
]
