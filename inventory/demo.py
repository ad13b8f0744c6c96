"""Demo data for the quick start: a small, realistic configuration built from the models.

It shows every kind of curation an operator does: profiles that enable HDFS,
Gaffer and Spark; presets with bounds; templated and group-only namespaces;
access rules by JupyterHub group with resource ceilings; Spark defaults; and
the discovered kinds (namespaces, HDFS instances, a Gaffer graph, notebook
service accounts and a volume), either as real objects for a cluster or as
stand-in rows marked as demo data. Loading it twice changes nothing.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.db import models, transaction

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
    SparkDefault,
)

PROFILES: list[dict[str, Any]] = [
    {
        "slug": "python",
        "display_name": "Python",
        "description": "Jupyter notebook with the scientific Python stack.",
        "image": "jupyter/scipy-notebook:2023-10-20",
        "default": True,
        "order": 10,
    },
    {
        "slug": "gaffer-pyspark",
        "display_name": "Gaffer + PySpark",
        "description": "Query Gaffer graphs and run Spark jobs against HDFS.",
        "image": "gchq/gaffer-pyspark-notebook:2.0.0",
        "order": 20,
        "enable_hdfs": True,
        "enable_gaffer": True,
        "enable_spark": True,
        "spark_image": "gchq/spark-py:3.1.2",
        "spark_ingress_host": "{{USERNAME}}-{{SERVERNAME}}.spark.example.org",
        "spark_ingress_path": "/",
        "kubespawner_override": {"default_url": "/lab"},
    },
    {
        "slug": "hdfs-tools",
        "display_name": "HDFS tools",
        "description": "Hadoop command line tools and a Python kernel.",
        "image": "gchq/hdfs-notebook:3.2.2",
        "order": 30,
        "enable_hdfs": True,
    },
]

PRESETS: list[dict[str, Any]] = [
    {
        "slug": "small",
        "display_name": "Small",
        "description": "For exploring: a quarter of a CPU.",
        "order": 10,
        "default": True,
        **{"cpu": Decimal("0.25"), "cpu_min": Decimal("0.1"), "cpu_max": Decimal("1")},
        **{"mem": 512, "mem_min": 256, "mem_max": 2048},
        **{"spark_cpu": Decimal("0.5"), "spark_cpu_min": Decimal("0.1"), "spark_cpu_max": Decimal("1")},
        **{"spark_mem": 512, "spark_mem_min": 256, "spark_mem_max": 2048},
        **{"disk": 5, "disk_min": 1, "disk_max": 20},
    },
    {
        "slug": "medium",
        "display_name": "Medium",
        "description": "Everyday analysis.",
        "order": 20,
        **{"cpu": Decimal("1"), "cpu_min": Decimal("0.5"), "cpu_max": Decimal("2")},
        **{"mem": 2048, "mem_min": 1024, "mem_max": 8192},
        **{"spark_cpu": Decimal("1"), "spark_cpu_min": Decimal("0.5"), "spark_cpu_max": Decimal("2")},
        **{"spark_mem": 1024, "spark_mem_min": 512, "spark_mem_max": 4096},
        **{"disk": 10, "disk_min": 5, "disk_max": 50},
    },
    {
        "slug": "large",
        "display_name": "Large",
        "description": "Big Spark jobs; data scientists only (their ceiling allows it).",
        "order": 30,
        **{"cpu": Decimal("2"), "cpu_min": Decimal("1"), "cpu_max": Decimal("4")},
        **{"mem": 8192, "mem_min": 4096, "mem_max": 16384},
        **{"spark_cpu": Decimal("2"), "spark_cpu_min": Decimal("1"), "spark_cpu_max": Decimal("4")},
        **{"spark_mem": 2048, "spark_mem_min": 1024, "spark_mem_max": 16384},
        **{"disk": 20, "disk_min": 10, "disk_max": 100},
    },
]

NAMESPACES: list[dict[str, Any]] = [
    {"pattern": "user-{username}", "description": "Your own namespace.", "order": 10},
    {"pattern": "default", "description": "Shared by everyone.", "order": 20},
    {
        "pattern": "analytics",
        "description": "Where the analytics HDFS and graphs live.",
        "groups": ["data-science"],
        "order": 30,
    },
]

SPARK_DEFAULTS = {
    "spark.master": "k8s://https://kubernetes.default.svc",
    "spark.submit.deployMode": "client",
    "spark.kubernetes.executor.deleteOnTermination": "true",
    "spark.dynamicAllocation.enabled": "false",
    "spark.eventLog.enabled": "false",
}

# --- The cluster side of the demo ------------------------------------------
#
# What the demo's discovered kinds are: Kubernetes objects with the labels the
# Gaffer and HDFS charts and the hub give them (ORIGINAL-CONTRACT.md, "What it
# discovered"). ``scripts/quickstart.sh --cluster`` applies them to a real
# apiserver and lets the sync find them; without a cluster, ``stand_in_rows``
# writes the rows the sync would make from them, marked with DEMO_LABEL.

DEMO_LABEL = "optionsportal.io/demo"
DEMO_NOTE = "Demo data standing in for a cluster: not a real object."

_HDFS_INSTANCES = (("default", "demo-hdfs"), ("analytics", "secure-hdfs"))
_GRAPH = ("default", "demo-graph")
_GRAPH_CONFIG = {
    "graphConfig.json": json.dumps({"graphId": "demo-graph", "description": "The road-traffic example graph."}),
}
_GRAPH_SCHEMA = {
    "elements.json": json.dumps({"edges": {"RoadUse": {"source": "junction", "destination": "junction"}}}),
    "types.json": json.dumps({"types": {"junction": {"class": "java.lang.String"}}}),
}
_SERVICE_ACCOUNTS = (
    ("default", "demo-notebook", "arn:aws:iam::123456789012:role/demo-notebook", ""),
    ("analytics", "analytics-notebook", "arn:aws:iam::123456789012:role/analytics/analytics-notebook", "admin"),
)
# (namespace, claim, owner, volume name)
_VOLUMES = (("user-alice", "claim-alice", "alice", "default"),)
NAMESPACE_NAMES = ("default", "analytics", "user-alice", "user-admin")


def _labels(name: str, component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": instance,
    }


def cluster_objects() -> list[dict[str, Any]]:
    """The demo as Kubernetes manifests, namespaces first."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        for name in NAMESPACE_NAMES
        if name != "default"
    ]
    for namespace, instance in _HDFS_INSTANCES:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": f"{instance}-namenodes",
                    "namespace": namespace,
                    "labels": _labels("hdfs", "namenode", instance),
                },
                "spec": {
                    "ports": [
                        {"name": "client-rpc", "port": 8020, "protocol": "TCP"},
                        {"name": "http", "port": 9870, "protocol": "TCP"},
                    ]
                },
            }
        )
    namespace, instance = _GRAPH
    objects += [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": f"{instance}-api",
                "namespace": namespace,
                "labels": _labels("gaffer", "api", instance),
            },
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{instance}-graph-config",
                "namespace": namespace,
                "labels": _labels("gaffer", "graph-config", instance),
            },
            "data": _GRAPH_CONFIG,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{instance}-schema",
                "namespace": namespace,
                "labels": _labels("gaffer", "schema", instance),
            },
            "data": _GRAPH_SCHEMA,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": f"{instance}-store-properties",
                "namespace": namespace,
                "labels": _labels("gaffer", "store-properties", instance),
            },
            "type": "Opaque",
            "stringData": {"store.properties": "gaffer.store.class=uk.gov.gchq.gaffer.mapstore.MapStore\n"},
        },
    ]
    for namespace, name, role_arn, users in _SERVICE_ACCOUNTS:
        annotations = {"eks.amazonaws.com/role-arn": role_arn}
        if users:
            annotations["hub.jupyter.org/users"] = users
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"hub.jupyter.org/notebook-service-account": "true"},
                    "annotations": annotations,
                },
            }
        )
    for namespace, claim, owner, volume_name in _VOLUMES:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": claim,
                    "namespace": namespace,
                    "labels": {
                        "app.kubernetes.io/name": "jupyterhub",
                        "app.kubernetes.io/component": "notebook-volume",
                        "hub.jupyter.org/username": owner,
                        "hub.jupyter.org/servername": "",
                        "hub.jupyter.org/volume-name": volume_name,
                    },
                    "annotations": {"hub.jupyter.org/username": owner},
                },
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
            }
        )
    return objects


# Operator curation of the discovered rows (operator-owned columns only).
HDFS_CURATION: dict[str, dict[str, Any]] = {
    "default:demo-hdfs": {"display_name": "Demo HDFS", "description": "A small HDFS open to everyone.", "order": 10},
    "analytics:secure-hdfs": {
        "display_name": "Secure HDFS",
        "description": "Production data; data scientists only.",
        "order": 20,
    },
}
GRAPH_CURATION: dict[str, dict[str, Any]] = {"default:demo-graph": {"display_name": "Demo graph", "order": 10}}


def _stand_in(fields: dict[str, Any], labels: dict[str, str], note: str = "") -> dict[str, Any]:
    demo_labels = {**labels, DEMO_LABEL: "true"}
    description = f"{DEMO_NOTE} {note}".strip()
    return {**fields, "source": Source.DISCOVERED, "labels": demo_labels, "description": description}


def stand_in_rows() -> int:
    """The rows the sync would make from ``cluster_objects()``, for a portal with no cluster."""
    created = 0
    for name in NAMESPACE_NAMES:
        created += _put(Namespace, {"name": name}, {"labels": {DEMO_LABEL: "true"}, "missing_since": None})[1]
    for namespace, instance in _HDFS_INSTANCES:
        key = f"{namespace}:{instance}"
        curation = HDFS_CURATION[key]
        fields = {
            "namespace": namespace,
            "name": instance,
            "observed_url": f"hdfs://{instance}-namenodes.{namespace}.svc:8020",
            "url_override": "",
            "display_name": curation["display_name"],
            "order": curation["order"],
            "missing_since": None,
        }
        spec = _stand_in(fields, _labels("hdfs", "namenode", instance), curation["description"])
        created += _put(HdfsInstance, {"key": key}, spec)[1]
    namespace, instance = _GRAPH
    key = f"{namespace}:{instance}"
    graph = {
        "namespace": namespace,
        "name": instance,
        "observed_url": f"http://{instance}-api.{namespace}.svc:80/rest",
        "url_override": "",
        "observed_description": "The road-traffic example graph.",
        "api_service": f"{instance}-api",
        "graph_config_map": f"{instance}-graph-config",
        "graph_config_files": _GRAPH_CONFIG,
        "schema_config_map": f"{instance}-schema",
        "schema_files": _GRAPH_SCHEMA,
        "store_secret": f"{instance}-store-properties",
        "missing_since": None,
        **GRAPH_CURATION[key],
    }
    created += _put(GafferGraph, {"key": key}, _stand_in(graph, _labels("gaffer", "api", instance)))[1]
    for namespace, name, role_arn, users in _SERVICE_ACCOUNTS:
        account = {
            "namespace": namespace,
            "name": name,
            "observed_role_arn": role_arn,
            "observed_users": [users] if users else [],
            "missing_since": None,
        }
        labels = {"hub.jupyter.org/notebook-service-account": "true"}
        created += _put(ServiceAccount, {"key": f"{namespace}:{name}"}, _stand_in(account, labels))[1]
    for namespace, claim, owner, volume_name in _VOLUMES:
        volume = {
            "namespace": namespace,
            "name": claim,
            "owner_username": owner,
            "owner_label": owner,
            "owner_servername": "",
            "volume_name": volume_name,
            "capacity": "5Gi",
            "phase": "Bound",
            "missing_since": None,
        }
        labels = {"app.kubernetes.io/name": "jupyterhub", "app.kubernetes.io/component": "notebook-volume"}
        created += _put(NotebookVolume, {"key": f"{namespace}:{claim}"}, _stand_in(volume, labels))[1]
    return created


def curate_discovered() -> None:
    """Operator names and order for the demo's discovered rows, once the sync has found them."""
    for key, curation in HDFS_CURATION.items():
        HdfsInstance.objects.filter(key=key).update(**curation)
    for key, curation in GRAPH_CURATION.items():
        GafferGraph.objects.filter(key=key).update(**curation)


# name → (fields, {relation: [natural keys]})
RULES: list[tuple[dict[str, Any], dict[str, list[str]]]] = [
    (
        {"name": "Everyone", "everyone": True, "max_cpu": Decimal("1"), "max_mem": 4096, "max_disk": 50},
        {},
    ),
    (
        {
            "name": "Data scientists",
            "groups": ["data-science"],
            "max_cpu": Decimal("4"),
            "max_mem": 16384,
            "max_spark_cpu": Decimal("4"),
            "max_spark_mem": 16384,
            "max_disk": 100,
        },
        {"profiles": ["gaffer-pyspark"], "hdfs_instances": ["analytics:secure-hdfs"]},
    ),
    (
        {"name": "Platform team", "users": ["admin"], "groups": ["platform"]},
        {"profiles": ["gaffer-pyspark", "hdfs-tools"], "hdfs_instances": ["analytics:secure-hdfs"]},
    ),
]

_RELATED: dict[str, tuple[type[Profile] | type[HdfsInstance] | type[GafferGraph], str]] = {
    "profiles": (Profile, "slug"),
    "hdfs_instances": (HdfsInstance, "key"),
    "gaffer_graphs": (GafferGraph, "key"),
}


def _put(model: type[models.Model], lookup: dict[str, Any], spec: dict[str, Any]) -> tuple[models.Model, bool]:
    values = {k: v for k, v in spec.items() if k not in lookup}
    return model.objects.update_or_create(**lookup, defaults=values)  # type: ignore[attr-defined]


@transaction.atomic
def load_demo(*, stand_in_for_cluster: bool = True) -> dict[str, int]:
    """Create or update the demo configuration; running it twice changes nothing.

    ``stand_in_for_cluster`` adds the discovered rows a cluster would give
    (marked with DEMO_LABEL). Off, the sync is expected to have found the real
    objects of ``cluster_objects()`` already, and only the curation is added.
    """
    if stand_in_for_cluster:
        created = stand_in_rows()
    else:
        created = 0
        curate_discovered()
    # One default at most: a default from earlier data steps down for the demo's.
    Profile.objects.filter(default=True).exclude(slug="python").update(default=False)
    ResourcePreset.objects.filter(default=True).exclude(slug="small").update(default=False)
    for spec in PROFILES:
        created += _put(Profile, {"slug": spec["slug"]}, spec)[1]
    for spec in PRESETS:
        created += _put(ResourcePreset, {"slug": spec["slug"]}, spec)[1]
    for spec in NAMESPACES:
        created += _put(NamespaceOption, {"pattern": spec["pattern"]}, spec)[1]
    for order, (key, value) in enumerate(SPARK_DEFAULTS.items(), start=1):
        created += _put(SparkDefault, {"key": key}, {"value": value, "order": order * 10})[1]
    for spec, grants in RULES:
        rule, new = _put(AccessRule, {"name": spec["name"]}, spec)
        created += new
        for relation, keys in grants.items():
            model, field_name = _RELATED[relation]
            getattr(rule, relation).set(model.objects.filter(**{f"{field_name}__in": keys}))
    return {"created": created}
