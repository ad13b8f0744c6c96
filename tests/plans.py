"""SpawnPlans for provisioning tests, built directly (validation is tested elsewhere)."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from spawning.plan import GafferChoice, HdfsChoice, ServiceAccountChoice, SparkChoice, SpawnPlan, VolumeChoice

HDFS_URL = "hdfs://namenode.hdfs.svc:8020"
SPARK_DEFAULTS = (
    ("spark.master", "k8s://https://kubernetes.default.svc"),
    ("spark.submit.deployMode", "client"),
    ("spark.kubernetes.namespace", "operator-default-is-overridden"),
)


def basic_plan(namespace: str, *, username: str = "alice", server_name: str = "", **changes: Any) -> SpawnPlan:
    plan = SpawnPlan(
        username=username,
        server_name=server_name,
        pod_name=f"jupyter-{username}" + (f"-{server_name}" if server_name else ""),
        namespace=namespace,
        profile_slug="pyspark",
        image="example.org/notebook:1",
        cpu=Decimal("0.5"),
        mem_mb=1024,
        volume=VolumeChoice(volume_name=server_name or "default", size_gb=10),
    )
    return replace(plan, **changes)


def gaffer_choice(namespace: str) -> GafferChoice:
    return GafferChoice(
        id=f"{namespace}:graph",
        namespace=namespace,
        instance="graph",
        url=f"http://graph-api.{namespace}.svc:80/rest",
        graph_config_map="graph-graph-config",
        schema_config_map="graph-schema",
        store_secret="graph-store-properties",
    )


def full_plan(namespace: str, graph_namespace: str, **changes: Any) -> SpawnPlan:
    """HDFS + Gaffer + Spark (with a UI Ingress) + a service account: everything /prespawn can make."""
    plan = basic_plan(
        namespace,
        service_account=ServiceAccountChoice(
            namespace=namespace, name="notebook-sa", role_arn="arn:aws:iam::123456789012:role/notebooks"
        ),
        hdfs=HdfsChoice(id="hdfs:hdfs", url=HDFS_URL),
        gaffer=gaffer_choice(graph_namespace),
        spark=SparkChoice(
            image="example.org/spark:3.5",
            executor_cpu=Decimal("1.5"),
            executor_mem_mb=2048,
            ingress_host="{{USERNAME}}.spark.example.org",
            ingress_path="/ui/{{SERVERNAME}}",
            defaults=SPARK_DEFAULTS,
        ),
    )
    return replace(plan, **changes)


GRAPH_CONFIG = {"graphConfig.json": '{"graphId": "graph", "description": "A <test> graph & more"}'}
SCHEMA = {"elements.json": '{"entities": {}}', "types.json": '{"types": {}}'}
STORE = {"store.properties": "gaffer.store.class=uk.gov.gchq.gaffer.accumulostore.AccumuloStore\npassword=s3cret\n"}


def create_graph(core: k8s.CoreV1Api, namespace: str) -> None:
    """The objects a Gaffer Helm release makes, as discovery finds them."""
    labels = {"app.kubernetes.io/name": "gaffer", "app.kubernetes.io/instance": "graph"}
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "graph-graph-config",
                "labels": {**labels, "app.kubernetes.io/component": "graph-config"},
            },
            "data": GRAPH_CONFIG,
        },
    )
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "graph-schema", "labels": {**labels, "app.kubernetes.io/component": "schema"}},
            "data": SCHEMA,
        },
    )
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {
                "name": "graph-store-properties",
                "labels": {**labels, "app.kubernetes.io/component": "store-properties"},
            },
            "stringData": STORE,
        },
    )


def create_pod(core: k8s.CoreV1Api, namespace: str, name: str, labels: dict[str, str]) -> None:
    """A notebook pod (it stays Pending: the test cluster has no scheduler)."""
    body = {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "notebook", "image": "example.org/notebook:1"}],
        },
    }
    # The controller-manager makes the namespace's default service account a
    # moment after the namespace; pod admission needs it.
    deadline = time.monotonic() + 15
    while True:
        try:
            core.create_namespaced_pod(namespace, body)
            return
        except ApiException as exc:
            if exc.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
