"""Demo data for the quick start: a small, realistic configuration built from the models.

It shows every kind of curation an operator does: profiles that enable HDFS,
Gaffer and Spark; presets with bounds; templated and group-only namespaces;
access rules by JupyterHub group with resource ceilings; Spark defaults; and
HDFS instances and a Gaffer graph entered by hand (the sync adds the ones it
discovers). Loading it twice changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models, transaction

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    NamespaceOption,
    Profile,
    ResourcePreset,
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

HDFS: list[dict[str, Any]] = [
    {
        "key": "default:demo-hdfs",
        "namespace": "default",
        "name": "demo-hdfs",
        "url_override": "hdfs://demo-hdfs-namenodes.default.svc:9820",
        "display_name": "Demo HDFS",
        "description": "A small HDFS open to everyone.",
        "order": 10,
    },
    {
        "key": "analytics:secure-hdfs",
        "namespace": "analytics",
        "name": "secure-hdfs",
        "url_override": "hdfs://secure-hdfs-namenodes.analytics.svc:9820",
        "display_name": "Secure HDFS",
        "description": "Production data; data scientists only.",
        "order": 20,
    },
]

GRAPHS: list[dict[str, Any]] = [
    {
        "key": "default:demo-graph",
        "namespace": "default",
        "name": "demo-graph",
        "url_override": "http://demo-graph-api.default.svc:80/rest",
        "display_name": "Demo graph",
        "description": "The road-traffic example graph.",
        "order": 10,
    },
]

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
def load_demo() -> dict[str, int]:
    """Create or update the demo configuration; running it twice changes nothing."""
    created = 0
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
    for spec in HDFS:
        created += _put(HdfsInstance, {"key": spec["key"]}, {**spec, "source": Source.MANUAL})[1]
    for spec in GRAPHS:
        created += _put(GafferGraph, {"key": spec["key"]}, {**spec, "source": Source.MANUAL})[1]
    for spec, grants in RULES:
        rule, new = _put(AccessRule, {"name": spec["name"]}, spec)
        created += new
        for relation, keys in grants.items():
            model, field_name = _RELATED[relation]
            getattr(rule, relation).set(model.objects.filter(**{f"{field_name}__in": keys}))
    return {"created": created}
