"""Demo data for the quick start: a small, realistic configuration built from the models."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

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

PROFILES = [
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
    },
]

PRESETS = [
    {"slug": "small", "display_name": "Small", "order": 10, "default": True, "cpu": Decimal("0.25"), "mem": 512},
    {"slug": "medium", "display_name": "Medium", "order": 20, "cpu": Decimal("1"), "mem": 2048},
    {"slug": "large", "display_name": "Large", "order": 30, "cpu": Decimal("2"), "mem": 8192, "spark_mem": 2048},
]

SPARK_DEFAULTS = {
    "spark.master": "k8s://https://kubernetes.default.svc",
    "spark.submit.deployMode": "client",
    "spark.kubernetes.executor.deleteOnTermination": "true",
    "spark.dynamicAllocation.enabled": "false",
}


@transaction.atomic
def load_demo() -> dict[str, int]:
    """Create or update the demo configuration; running it twice changes nothing."""
    created = 0
    for spec in PROFILES:
        _, new = Profile.objects.update_or_create(slug=spec["slug"], defaults=spec)
        created += new
    for spec in PRESETS:
        _, new = ResourcePreset.objects.update_or_create(slug=spec["slug"], defaults=spec)
        created += new
    for pattern, order in (("user-{username}", 10), ("default", 20)):
        _, new = NamespaceOption.objects.update_or_create(pattern=pattern, defaults={"order": order})
        created += new
    for order, (key, value) in enumerate(SPARK_DEFAULTS.items()):
        _, new = SparkDefault.objects.update_or_create(key=key, defaults={"value": value, "order": order})
        created += new
    _, new = HdfsInstance.objects.update_or_create(
        key="default:demo-hdfs",
        defaults={
            "source": Source.MANUAL,
            "namespace": "default",
            "name": "demo-hdfs",
            "url_override": "hdfs://demo-hdfs-namenodes.default.svc:9820",
            "display_name": "Demo HDFS",
        },
    )
    created += new
    _, new = GafferGraph.objects.update_or_create(
        key="default:demo-graph",
        defaults={
            "source": Source.MANUAL,
            "namespace": "default",
            "name": "demo-graph",
            "url_override": "http://demo-graph-api.default.svc:80/rest",
            "display_name": "Demo graph",
            "description": "The road-traffic example graph.",
        },
    )
    created += new
    rule, new = AccessRule.objects.update_or_create(
        name="Data scientists", defaults={"groups": ["data-science"], "max_cpu": Decimal("4"), "max_mem": 16384}
    )
    created += new
    rule.profiles.set(Profile.objects.filter(slug="gaffer-pyspark"))
    return {"created": created}
