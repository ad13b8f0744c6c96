"""The pure builders: manifests and reply from a plan, with no cluster."""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import yaml

from kube import names
from kube.provision import ConfigSource, ObjectRef
from spawning.labels import ANNOTATION_LAST_APPLIED, ANNOTATION_SERVERNAME, ANNOTATION_USERNAME
from spawning.plan import HdfsChoice, SparkChoice, VolumeChoice
from spawning.provisioning import gaffer_source_refs, plan_objects, plan_reply, spark_properties
from tests.plans import basic_plan, full_plan

COMPONENTS = {"hadoop-config", "gaffer-graph-config", "gaffer-schema", "gaffer-store", "spark-config", "spark-driver"}


def _sources(plan) -> dict[ObjectRef, ConfigSource]:
    return {
        ref: ConfigSource(
            ref=ref,
            data={"file": f"contents of {ref.name}"},
            secret_type="Opaque" if ref.kind == "Secret" else "",
        )
        for ref in gaffer_source_refs(plan)
    }


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _properties(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values[key] = value.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return values


def test_reply_resources_use_kubespawner_suffixes() -> None:
    reply = plan_reply(basic_plan("ns", cpu=Decimal("0.25"), mem_mb=512, volume=VolumeChoice("", 7)))
    assert reply["resources"] == {
        "cpu_guarantee": 0.25,
        "cpu_limit": 0.25,
        "mem_guarantee": "512M",
        "mem_limit": "512M",
        "storage_capacity": "7G",
    }
    assert reply["namespace"] == "ns"
    assert "pvc_name" not in reply and "serviceAccount" not in reply


def test_a_plan_with_nothing_chosen_makes_no_objects() -> None:
    plan = basic_plan("ns")
    assert plan_objects(plan) == []
    reply = plan_reply(plan)
    assert reply["volumes"] == [] and reply["volumeMounts"] == [] and reply["env"] == {}


def test_every_object_is_labelled_and_annotated_for_cleanup() -> None:
    plan = full_plan("ns", "graphs", username="Jo.Smith@x", server_name="Big One")
    objects = plan_objects(plan, gaffer_sources=_sources(plan))
    assert {o["metadata"]["labels"]["app.kubernetes.io/component"] for o in objects} == COMPONENTS | {"spark-ui"}
    for manifest in objects:
        metadata = manifest["metadata"]
        assert metadata["namespace"] == "ns"
        assert metadata["labels"]["app.kubernetes.io/name"] == "jhub-notebook-config"
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "options-portal"
        assert metadata["labels"]["app.kubernetes.io/version"]
        assert metadata["labels"]["hub.jupyter.org/username"] == names.label_value("Jo.Smith@x")
        assert metadata["labels"]["hub.jupyter.org/servername"] == names.label_value("Big One")
        assert metadata["annotations"][ANNOTATION_USERNAME] == "Jo.Smith@x"
        assert metadata["annotations"][ANNOTATION_SERVERNAME] == "Big One"
        assert metadata["annotations"][ANNOTATION_LAST_APPLIED].endswith("Z")
        assert all(names.LABEL_VALUE.match(value) for value in metadata["labels"].values())
        assert len(metadata["name"]) <= 63 and names.DNS1123_LABEL.match(metadata["name"])


def test_core_site_escapes_xml() -> None:
    url = "hdfs://nn.ns.svc:8020/base?a=1&b=<x>\x01"
    plan = basic_plan("ns", hdfs=HdfsChoice(id="x", url=url))
    (config_map,) = plan_objects(plan)
    tree = ET.fromstring(config_map["data"]["core-site.xml"])  # noqa: S314 - XML we made ourselves
    properties = {p.findtext("name"): p.findtext("value") for p in tree.iter("property")}
    assert properties["fs.defaultFS"] == "hdfs://nn.ns.svc:8020/base?a=1&b=<x>"


def test_shell_files_quote_the_username() -> None:
    username = "o'brien; rm -rf /"
    plan = basic_plan("ns", username=username, hdfs=HdfsChoice(id="x", url="hdfs://nn:8020"))
    env_script = plan_objects(plan)[0]["data"]["hadoop-env.sh"]
    exports = dict(shlex.split(line)[1].split("=", 1) for line in env_script.splitlines() if line.startswith("export "))
    assert exports == {"HADOOP_CONF_DIR": "/etc/hadoop/conf", "HADOOP_USER_NAME": username}


def test_spark_properties_cannot_be_injected_through_a_username() -> None:
    username = "eve\nspark.kubernetes.container.image evil:latest"
    plan = full_plan("ns", "ns", username=username, gaffer=None)
    spark = _by_kind(plan_objects(plan), "ConfigMap")[-1]
    properties = _properties(spark["data"]["spark-defaults.conf"])
    assert properties["spark.kubernetes.container.image"] == "example.org/spark:3.5"
    assert properties["spark.eventLog.dir"] == f"hdfs:///user/{username}/spark-logs/"


def test_notebook_values_override_operator_defaults() -> None:
    plan = full_plan("user-ns", "ns")
    keys = [key for key, _ in spark_properties(plan)]
    assert keys[:2] == ["spark.master", "spark.submit.deployMode"]
    assert keys.count("spark.kubernetes.namespace") == 1
    assert dict(spark_properties(plan))["spark.kubernetes.namespace"] == "user-ns"


def test_spark_event_log_only_with_hdfs() -> None:
    with_hdfs = dict(spark_properties(full_plan("ns", "ns")))
    without = dict(spark_properties(full_plan("ns", "ns", hdfs=None)))
    assert with_hdfs["spark.eventLog.dir"] == "hdfs:///user/alice/spark-logs/"
    assert "spark.eventLog.dir" not in without and "spark.eventLog.enabled" not in without


def test_executor_template_and_service_selector() -> None:
    plan = full_plan("ns", "ns")
    objects = plan_objects(plan)
    spark = next(o for o in objects if o["metadata"]["name"] == "jhub-spark-config-alice")
    executor = yaml.safe_load(spark["data"]["executor-pod.yaml"])
    assert executor["spec"]["securityContext"] == {"fsGroup": 65534}
    assert executor["spec"]["serviceAccountName"] == "notebook-sa"
    (service,) = _by_kind(objects, "Service")
    reply = plan_reply(plan)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= reply["labels"].items()
    assert not service["spec"]["selector"].items() <= executor["metadata"]["labels"].items()
    assert service["metadata"]["name"] == plan.pod_name


def test_ingress_only_when_the_profile_sets_one() -> None:
    plan = full_plan("ns", "ns", username="Jo.Smith", server_name="gpu")
    (ingress,) = _by_kind(plan_objects(plan), "Ingress")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == f"{names.label_value('Jo.Smith')}.spark.example.org"
    assert rule["http"]["paths"][0]["path"] == "/ui/gpu"
    assert plan_reply(plan)["env"]["SPARK_UI_URL"] == f"https://{rule['host']}/ui/gpu"

    assert plan.spark is not None
    no_ingress = replace(plan, spark=replace(plan.spark, ingress_host="", ingress_path=""))
    assert _by_kind(plan_objects(no_ingress), "Ingress") == []


def test_gaffer_same_namespace_mounts_the_graphs_objects() -> None:
    plan = basic_plan("graphs", gaffer=full_plan("graphs", "graphs").gaffer)
    assert gaffer_source_refs(plan) == []
    assert plan_objects(plan) == []
    names_mounted = {
        (v.get("configMap") or {}).get("name") or v["secret"]["secretName"] for v in plan_reply(plan)["volumes"]
    }
    assert names_mounted == {"graph-graph-config", "graph-schema", "graph-store-properties"}


def test_gaffer_elsewhere_is_copied_and_needs_the_sources() -> None:
    plan = basic_plan("ns", gaffer=full_plan("ns", "graphs").gaffer)
    assert {ref.namespace for ref in gaffer_source_refs(plan)} == {"graphs"}
    with pytest.raises(ValueError, match="graph-graph-config"):
        plan_objects(plan)
    objects = plan_objects(plan, gaffer_sources=_sources(plan))
    (secret,) = _by_kind(objects, "Secret")
    assert secret["data"] == {"file": "contents of graph-store-properties"}
    assert secret["type"] == "Opaque"
    assert {o["metadata"]["name"] for o in objects} == {
        "jhub-gaffer-graph-config-alice",
        "jhub-gaffer-schema-alice",
        "jhub-gaffer-store-alice",
    }


def test_a_manual_graph_without_files_only_sets_the_url() -> None:
    gaffer = full_plan("ns", "graphs").gaffer
    assert gaffer is not None
    plan = basic_plan("ns", gaffer=replace(gaffer, graph_config_map="", schema_config_map="", store_secret=""))
    assert plan_objects(plan) == []
    reply = plan_reply(plan)
    assert reply["env"] == {"GAFFER_REST_API_URL": gaffer.url}
    assert reply["volumes"] == []


def test_volume_labels_for_existing_and_new() -> None:
    existing = plan_reply(basic_plan("ns", volume=VolumeChoice("Data Set", 5, existing_claim="claim-1")))
    assert existing["pvc_name"] == "claim-1"
    assert existing["storage_extra_labels"]["hub.jupyter.org/volume-name"] == names.label_value("Data Set")
    dotted = plan_reply(basic_plan("ns", username="Jo.Smith", volume=VolumeChoice("data", 5)))
    assert dotted["storage_extra_labels"]["hub.jupyter.org/username"] == "Jo.Smith"
    new = plan_reply(basic_plan("ns", server_name="", volume=VolumeChoice("", 5)))
    assert new["storage_extra_labels"]["hub.jupyter.org/volume-name"] == "default"
    assert new["storage_extra_labels"]["app.kubernetes.io/component"] == "notebook-volume"


def test_executor_cores_are_plain_decimals() -> None:
    plan = full_plan("ns", "ns")
    assert plan.spark is not None
    for cpu, text in ((Decimal("20"), "20"), (Decimal("0.50"), "0.5"), (Decimal("1"), "1")):
        properties = dict(spark_properties(replace(plan, spark=replace(plan.spark, executor_cpu=cpu))))
        assert properties["spark.kubernetes.executor.request.cores"] == text
        assert properties["spark.kubernetes.executor.limit.cores"] == text


def test_builders_are_deterministic_for_a_given_time() -> None:
    from datetime import UTC, datetime

    plan = full_plan("ns", "ns")
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert plan_objects(plan, applied_at=moment) == plan_objects(plan, applied_at=moment)
    assert plan_objects(plan, applied_at=moment)[0]["metadata"]["annotations"][ANNOTATION_LAST_APPLIED] == (
        "2024-01-02T03:04:05Z"
    )
    assert plan_reply(plan) == plan_reply(plan)


def test_spark_choice_without_defaults() -> None:
    plan = basic_plan("ns", spark=SparkChoice(image="img", executor_cpu=Decimal("1"), executor_mem_mb=512))
    keys = [key for key, _ in spark_properties(plan)]
    assert keys[0] == "spark.kubernetes.container.image"


def test_ingress_templates_survive_the_default_servers_empty_name() -> None:
    plan = full_plan("ns", "ns", server_name="")
    assert plan.spark is not None
    spark = replace(
        plan.spark,
        ingress_host="{{USERNAME}}-{{SERVERNAME}}.spark.example.org",
        ingress_path="//{{USERNAME}}/{{SERVERNAME}}/",
    )
    (ingress,) = _by_kind(plan_objects(replace(plan, spark=spark)), "Ingress")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "alice.spark.example.org"
    assert rule["http"]["paths"][0]["path"] == "/alice/"
