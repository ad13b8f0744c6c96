"""Spark: executors on Kubernetes for the notebook's driver, their defaults, and the driver's Service and UI."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string

from inventory.models import SparkDefault
from kube import names
from kube.names import POD_LABEL_ROLE, ROLE_EXECUTOR
from kube.provision import CONFIG_MAP, INGRESS, SERVICE
from spawning.labels import notebook_labels, object_name
from spawning.offers.base import ManifestContext, NumberField, OfferedKind, Validation
from spawning.offers.hdfs import HADOOP_CONF_DIR
from spawning.offers.resources import number_state
from spawning.plan import SparkChoice, SpawnPlan
from spawning.replies import ReplyBuilder

SPARK_CPU = NumberField("spark_cpu", "spark_cpu", "Spark executor CPU")
SPARK_MEMORY = NumberField("spark_mem", "spark_mem", "Spark executor memory")
SPARK_CONF_DIR = "/opt/spark/conf"
SPARK_UI_PORT = 4040
SPARK_DRIVER_PORT = 7078
SPARK_BLOCK_MANAGER_PORT = 7079


def spark_config_name(plan: SpawnPlan) -> str:
    return object_name(plan, "jhub-spark-config")


def spark_ui_ingress_name(plan: SpawnPlan) -> str:
    return object_name(plan, "jhub-spark-ui")


def spark_service_name(plan: SpawnPlan) -> str:
    return names.service_name(plan.pod_name)


def _properties_value(value: str) -> str:
    """Escape a value for java.util.Properties, which Spark reads spark-defaults.conf with."""
    escaped = (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t").replace("\f", "\\f")
    )
    if escaped.startswith(" "):
        escaped = "\\" + escaped
    return escaped


def _cpu_text(value: Decimal) -> str:
    # "1.50" → "1.5", "2" stays "2" (normalize alone would give "2E+1" for 20).
    return format(Decimal(str(value)).normalize(), "f")


def spark_properties(plan: SpawnPlan) -> list[tuple[str, str]]:
    """spark-defaults.conf: operator defaults first, then this notebook's own values (which win)."""
    spark = plan.spark
    if spark is None:
        return []
    labels = notebook_labels(plan)
    cores = _cpu_text(spark.executor_cpu)
    own: list[tuple[str, str]] = [
        ("spark.kubernetes.container.image", spark.image),
        ("spark.kubernetes.namespace", plan.namespace),
        ("spark.kubernetes.executor.podTemplateFile", f"{SPARK_CONF_DIR}/executor-pod.yaml"),
    ]
    if plan.service_account is not None:
        own += [
            ("spark.kubernetes.authenticate.driver.serviceAccountName", plan.service_account.name),
            ("spark.kubernetes.authenticate.executor.serviceAccountName", plan.service_account.name),
        ]
    own += [(f"spark.kubernetes.driver.label.{key}", value) for key, value in labels.items()]
    own += [(f"spark.kubernetes.executor.label.{key}", value) for key, value in _executor_labels(plan).items()]
    own += [
        ("spark.kubernetes.executor.request.cores", cores),
        ("spark.kubernetes.executor.limit.cores", cores),
        ("spark.executor.memory", f"{spark.executor_mem_mb}m"),
        ("spark.ui.port", str(SPARK_UI_PORT)),
        ("spark.driver.host", f"{spark_service_name(plan)}.{plan.namespace}.svc"),
        ("spark.driver.bindAddress", "0.0.0.0"),  # noqa: S104 - the driver must accept executors' connections
        ("spark.driver.port", str(SPARK_DRIVER_PORT)),
        ("spark.driver.blockManager.port", str(SPARK_BLOCK_MANAGER_PORT)),
    ]
    if plan.hdfs is not None:
        own += [
            ("spark.eventLog.enabled", "true"),
            ("spark.eventLog.dir", f"hdfs:///user/{plan.username}/spark-logs/"),
        ]
    # A default the notebook sets itself would be overridden anyway; leaving it
    # out keeps the file saying what actually applies.
    ours = {key for key, _ in own}
    defaults = [(key, value) for key, value in spark.defaults if key not in ours]
    return defaults + own


def _executor_labels(plan: SpawnPlan) -> dict[str, str]:
    # Not the notebook's role label: the driver's headless Service must not pick executors.
    labels = notebook_labels(plan)
    labels[POD_LABEL_ROLE] = ROLE_EXECUTOR
    return labels


def _spark_ingress(plan: SpawnPlan) -> tuple[str, str] | None:
    spark = plan.spark
    if spark is None or not (spark.ingress_host or spark.ingress_path):
        return None
    host = names.expand_template(spark.ingress_host, username=plan.username, server_name=plan.server_name)
    path = names.expand_template(spark.ingress_path, username=plan.username, server_name=plan.server_name)
    # The default server's name is empty: "{{USERNAME}}-{{SERVERNAME}}.example.org"
    # must still give a valid host, and "/{{USERNAME}}/{{SERVERNAME}}/" a tidy path.
    host = re.sub(r"\.{2,}", ".", re.sub(r"\.-+|-+\.", ".", host)).strip(".-")
    path = "/" + re.sub(r"/{2,}", "/", path).lstrip("/")
    return host, path


def spark_ui_url(plan: SpawnPlan) -> str:
    ingress = _spark_ingress(plan)
    if ingress is None:
        return f"http://{spark_service_name(plan)}.{plan.namespace}.svc:{SPARK_UI_PORT}/"
    host, path = ingress
    return f"https://{host}{path}" if host else path


def spark_objects(plan: SpawnPlan, metadata: Callable[[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    assert plan.spark is not None
    executor_context = {
        "labels": [(key, json.dumps(value)) for key, value in _executor_labels(plan).items()],
        "service_account": json.dumps(plan.service_account.name) if plan.service_account else "",
    }
    env_context = {
        "spark_conf_dir": shlex.quote(SPARK_CONF_DIR),
        "hadoop_conf_dir": shlex.quote(HADOOP_CONF_DIR) if plan.hdfs is not None else "",
    }
    properties = [(key, _properties_value(value)) for key, value in spark_properties(plan)]
    service = spark_service_name(plan)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": CONFIG_MAP,
            "metadata": metadata(spark_config_name(plan), "spark-config"),
            "data": {
                "spark-defaults.conf": render_to_string("spark/spark-defaults.conf", {"properties": properties}),
                "executor-pod.yaml": render_to_string("spark/executor-pod.yaml", executor_context),
                "spark-env.sh": render_to_string("spark/spark-env.sh", env_context),
            },
        },
        {
            "apiVersion": "v1",
            "kind": SERVICE,
            "metadata": metadata(service, "spark-driver"),
            "spec": {
                # Headless: executors reach the driver at the pod's own address.
                "clusterIP": "None",
                "selector": notebook_labels(plan),
                "publishNotReadyAddresses": True,
                "ports": [
                    {"name": "spark-ui", "port": SPARK_UI_PORT, "targetPort": SPARK_UI_PORT, "protocol": "TCP"},
                    {
                        "name": "spark-driver",
                        "port": SPARK_DRIVER_PORT,
                        "targetPort": SPARK_DRIVER_PORT,
                        "protocol": "TCP",
                    },
                    {
                        "name": "spark-blockmanager",
                        "port": SPARK_BLOCK_MANAGER_PORT,
                        "targetPort": SPARK_BLOCK_MANAGER_PORT,
                        "protocol": "TCP",
                    },
                ],
            },
        },
    ]
    ingress = _spark_ingress(plan)
    if ingress is not None:
        host, path = ingress
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": "Prefix",
                        "backend": {"service": {"name": service, "port": {"number": SPARK_UI_PORT}}},
                    }
                ]
            }
        }
        if host:
            rule["host"] = host
        objects.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": INGRESS,
                "metadata": metadata(spark_ui_ingress_name(plan), "spark-ui"),
                "spec": {"rules": [rule]},
            }
        )
    return objects


class SparkKind(OfferedKind):
    name = "spark"
    template = "spawning/offers/spark.html"
    number_fields = (SPARK_CPU, SPARK_MEMORY)

    def load(self) -> tuple[tuple[str, str], ...]:
        return tuple(SparkDefault.objects.values_list("key", "value"))

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        profile = state.get("chosen_profile")
        return {
            "show_spark": bool(profile and profile.get("enable_spark")),
            "spark_cpu": number_state(SPARK_CPU, data, selected, state),
            "spark_mem": number_state(SPARK_MEMORY, data, selected, state),
        }

    def validate(self, v: Validation) -> None:
        if v.profile is None or not v.profile.enable_spark:
            return
        v.plan["spark"] = SparkChoice(
            image=v.profile.spark_image,
            executor_cpu=v.numbers[SPARK_CPU.name],
            executor_mem_mb=int(v.numbers[SPARK_MEMORY.name]),
            ingress_host=v.profile.spark_ingress_host,
            ingress_path=v.profile.spark_ingress_path,
            defaults=v.snapshot.kinds[self.name],
        )

    def manifests(self, plan: SpawnPlan, ctx: ManifestContext) -> list[dict[str, Any]]:
        return spark_objects(plan, ctx.metadata) if plan.spark is not None else []

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if plan.spark is None:
            return
        reply.env["SPARK_CONF_DIR"] = SPARK_CONF_DIR
        reply.env["SPARK_UI_URL"] = spark_ui_url(plan)
        reply.mount({"name": "jhub-spark-config", "configMap": {"name": spark_config_name(plan)}}, SPARK_CONF_DIR)


KIND = SparkKind()
