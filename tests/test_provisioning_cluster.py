"""provision() against the real apiserver: every choice makes the objects and reply the contract names."""

from __future__ import annotations

import json
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from kube import names
from kube.client import KubeError, KubeUnavailable, reset_api_client
from spawning.labels import APP_NAME, LABEL_USERNAME, OUR_OBJECTS_SELECTOR, notebook_labels
from spawning.plan import ServiceAccountChoice, SparkChoice, VolumeChoice
from spawning.provisioning import ObjectRef, ProvisionResult, provision
from spawning.serializers import prespawn_output
from tests.plans import GRAPH_CONFIG, HDFS_URL, SCHEMA, basic_plan, create_graph, full_plan, gaffer_choice

pytestmark = pytest.mark.kube


def wire(result: ProvisionResult) -> dict:
    """The reply as a hub asking for ``reply_version`` 2 receives it."""
    return prespawn_output(result.reply, reply_version=2)


@pytest.fixture
def networking(kube_cluster) -> Iterator[k8s.NetworkingV1Api]:
    api = kube_cluster.api_client()
    yield k8s.NetworkingV1Api(api)
    api.close()


def _properties(text: str) -> dict[str, str]:
    """Enough of java.util.Properties to read what we write (no continuation lines are emitted)."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(" ")
        values[key] = value.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return values


def _our_objects(core: k8s.CoreV1Api, networking: k8s.NetworkingV1Api, namespace: str) -> set[ObjectRef]:
    found = set()
    for kind, items in (
        ("ConfigMap", core.list_namespaced_config_map(namespace, label_selector=OUR_OBJECTS_SELECTOR).items),
        ("Secret", core.list_namespaced_secret(namespace, label_selector=OUR_OBJECTS_SELECTOR).items),
        ("Service", core.list_namespaced_service(namespace, label_selector=OUR_OBJECTS_SELECTOR).items),
        ("Ingress", networking.list_namespaced_ingress(namespace, label_selector=OUR_OBJECTS_SELECTOR).items),
    ):
        found |= {ObjectRef(kind, namespace, item.metadata.name) for item in items}
    return found


def test_hdfs_config_map_env_and_mount(kube, core_v1, networking, namespace) -> None:
    plan = basic_plan(namespace, hdfs=full_plan(namespace, namespace).hdfs)
    result = provision(plan)

    config_maps = [ref for ref in result.objects if ref.kind == "ConfigMap"]
    assert result.objects == config_maps and len(config_maps) == 1
    config_map = core_v1.read_namespaced_config_map(config_maps[0].name, namespace)
    assert config_map.metadata.name == "jhub-hadoop-config-alice"
    core_site = ET.fromstring(config_map.data["core-site.xml"])  # noqa: S314 - XML we made ourselves
    properties = {p.findtext("name"): p.findtext("value") for p in core_site.iter("property")}
    assert properties["fs.defaultFS"] == HDFS_URL
    assert properties["fs.s3a.aws.credentials.provider"] == "com.amazonaws.auth.WebIdentityTokenCredentialsProvider"
    assert "HADOOP_USER_NAME=alice" in config_map.data["hadoop-env.sh"]
    assert "log4j.rootLogger" in config_map.data["log4j.properties"]
    assert config_map.metadata.labels["app.kubernetes.io/component"] == "hadoop-config"
    assert config_map.metadata.labels["app.kubernetes.io/name"] == APP_NAME

    reply = wire(result)
    assert reply["namespace"] == namespace
    assert reply["env"]["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"
    assert reply["env"]["HADOOP_USER_NAME"] == "alice"
    volume = next(v for v in reply["volumes"] if v.get("configMap", {}).get("name") == config_map.metadata.name)
    mount = next(m for m in reply["volumeMounts"] if m["name"] == volume["name"])
    assert mount == {"name": volume["name"], "mountPath": "/etc/hadoop/conf", "readOnly": True}
    assert _our_objects(core_v1, networking, namespace) == set(result.objects)


def test_managed_fields_name_our_field_manager(kube, core_v1, namespace, settings) -> None:
    settings.KUBE_FIELD_MANAGER = "options-portal-test"
    result = provision(basic_plan(namespace, hdfs=full_plan(namespace, namespace).hdfs))
    config_map = core_v1.read_namespaced_config_map(result.objects[0].name, namespace)
    managers = {(entry.manager, entry.operation) for entry in config_map.metadata.managed_fields}
    assert managers == {("options-portal-test", "Apply")}


def test_gaffer_in_its_own_namespace_is_mounted_directly(kube, core_v1, networking, namespace) -> None:
    create_graph(core_v1, namespace)
    plan = basic_plan(namespace, gaffer=gaffer_choice(namespace))
    result = provision(plan)

    assert result.objects == []
    assert _our_objects(core_v1, networking, namespace) == set()
    reply = wire(result)
    assert reply["env"]["GAFFER_REST_API_URL"] == f"http://graph-api.{namespace}.svc:80/rest"
    mounts = {m["mountPath"]: m["name"] for m in reply["volumeMounts"]}
    volumes = {v["name"]: v for v in reply["volumes"]}
    assert volumes[mounts["/etc/gaffer/graph/"]]["configMap"] == {"name": "graph-graph-config"}
    assert volumes[mounts["/etc/gaffer/schema/"]]["configMap"] == {"name": "graph-schema"}
    assert volumes[mounts["/etc/gaffer/store/"]]["secret"] == {"secretName": "graph-store-properties"}


def test_gaffer_in_another_namespace_is_copied(kube, core_v1, make_namespace) -> None:
    notebook_ns, graph_ns = make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    result = provision(basic_plan(notebook_ns, gaffer=gaffer_choice(graph_ns)))

    assert {ref.kind for ref in result.objects} == {"ConfigMap", "Secret"}
    assert all(ref.namespace == notebook_ns for ref in result.objects)
    graph_copy = core_v1.read_namespaced_config_map("jhub-gaffer-graph-config-alice", notebook_ns)
    schema_copy = core_v1.read_namespaced_config_map("jhub-gaffer-schema-alice", notebook_ns)
    store_copy = core_v1.read_namespaced_secret("jhub-gaffer-store-alice", notebook_ns)
    store = core_v1.read_namespaced_secret("graph-store-properties", graph_ns)
    assert graph_copy.data == GRAPH_CONFIG
    assert schema_copy.data == SCHEMA
    assert store_copy.data == store.data
    assert store_copy.type == store.type
    assert store_copy.metadata.labels["app.kubernetes.io/component"] == "gaffer-store"

    volumes = {v["name"]: v for v in wire(result)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in wire(result)["volumeMounts"]}
    assert volumes[mounts["/etc/gaffer/graph/"]]["configMap"] == {"name": "jhub-gaffer-graph-config-alice"}
    assert volumes[mounts["/etc/gaffer/schema/"]]["configMap"] == {"name": "jhub-gaffer-schema-alice"}
    assert volumes[mounts["/etc/gaffer/store/"]]["secret"] == {"secretName": "jhub-gaffer-store-alice"}


def test_gaffer_copy_of_a_vanished_graph_fails_without_making_anything(
    kube, core_v1, networking, make_namespace
) -> None:
    notebook_ns, graph_ns = make_namespace(), make_namespace()
    with pytest.raises(KubeError, match="graph-graph-config"):
        provision(basic_plan(notebook_ns, gaffer=gaffer_choice(graph_ns)))
    assert _our_objects(core_v1, networking, notebook_ns) == set()


def test_spark_config_service_and_ingress(kube, core_v1, networking, make_namespace) -> None:
    namespace, graph_ns = make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    plan = full_plan(namespace, graph_ns)
    result = provision(plan)

    spark = core_v1.read_namespaced_config_map("jhub-spark-config-alice", namespace)
    properties = _properties(spark.data["spark-defaults.conf"])
    assert properties["spark.master"] == "k8s://https://kubernetes.default.svc"
    assert properties["spark.kubernetes.container.image"] == "example.org/spark:3.5"
    assert properties["spark.kubernetes.namespace"] == namespace
    assert properties["spark.kubernetes.executor.request.cores"] == "1.5"
    assert properties["spark.kubernetes.executor.limit.cores"] == "1.5"
    assert properties["spark.executor.memory"] == "2048m"
    assert properties["spark.kubernetes.authenticate.driver.serviceAccountName"] == "notebook-sa"
    assert properties["spark.eventLog.enabled"] == "true"
    assert properties["spark.eventLog.dir"] == "hdfs:///user/alice/spark-logs/"
    assert properties["spark.ui.port"] == "4040"
    assert properties["spark.kubernetes.executor.podTemplateFile"] == "/opt/spark/conf/executor-pod.yaml"
    assert properties["spark.driver.host"] == f"jupyter-alice.{namespace}.svc"
    executor = yaml.safe_load(spark.data["executor-pod.yaml"])
    assert executor["spec"]["securityContext"]["fsGroup"] == 65534
    assert "SPARK_CONF_DIR" in spark.data["spark-env.sh"]

    service = core_v1.read_namespaced_service("jupyter-alice", namespace)
    assert service.spec.cluster_ip == "None"
    assert {port.port for port in service.spec.ports} >= {4040}
    assert service.spec.selector.items() <= wire(result)["labels"].items()
    assert service.spec.selector == notebook_labels(plan)
    # Executors carry the user's labels too, but the driver's Service must not select them.
    assert not service.spec.selector.items() <= executor["metadata"]["labels"].items()

    ingress = networking.read_namespaced_ingress("jhub-spark-ui-alice", namespace)
    rule = ingress.spec.rules[0]
    assert rule.host == "alice.spark.example.org"
    assert rule.http.paths[0].path == "/ui/"
    assert rule.http.paths[0].backend.service.name == "jupyter-alice"
    assert rule.http.paths[0].backend.service.port.number == 4040
    assert wire(result)["env"]["SPARK_UI_URL"] == "https://alice.spark.example.org/ui/"
    mounts = {m["mountPath"]: m["name"] for m in wire(result)["volumeMounts"]}
    volumes = {v["name"]: v for v in wire(result)["volumes"]}
    assert volumes[mounts["/opt/spark/conf"]]["configMap"] == {"name": "jhub-spark-config-alice"}


def test_spark_without_hdfs_service_account_or_ingress(kube, core_v1, networking, namespace) -> None:
    plan = basic_plan(namespace, spark=SparkChoice(image="example.org/spark:3.5", executor_cpu=1, executor_mem_mb=512))
    result = provision(plan)

    properties = _properties(
        core_v1.read_namespaced_config_map("jhub-spark-config-alice", namespace).data["spark-defaults.conf"]
    )
    assert "spark.eventLog.dir" not in properties
    assert "spark.kubernetes.authenticate.driver.serviceAccountName" not in properties
    assert networking.list_namespaced_ingress(namespace).items == []
    assert {ref.kind for ref in result.objects} == {"ConfigMap", "Service"}
    assert wire(result)["env"]["SPARK_UI_URL"] == f"http://jupyter-alice.{namespace}.svc:4040/"


def test_service_account_and_volumes(kube, namespace) -> None:
    account = ServiceAccountChoice(namespace=namespace, name="notebook-sa", role_arn="arn:aws:iam::1:role/r")
    existing = wire(
        provision(
            basic_plan(
                namespace,
                server_name="gpu",
                service_account=account,
                volume=VolumeChoice(volume_name="data", size_gb=20, existing_claim="claim-alice-data"),
            )
        )
    )
    assert existing["serviceAccount"] == "notebook-sa"
    assert existing["pvc_name"] == "claim-alice-data"
    assert existing["storage_extra_labels"]["hub.jupyter.org/volume-name"] == "data"
    assert existing["storage_extra_labels"]["hub.jupyter.org/username"] == "alice"
    assert existing["storage_extra_labels"]["hub.jupyter.org/servername"] == "gpu"

    new = wire(provision(basic_plan(namespace, server_name="gpu", volume=VolumeChoice(volume_name="", size_gb=20))))
    assert "pvc_name" not in new
    assert "serviceAccount" not in new
    assert new["storage_extra_labels"]["hub.jupyter.org/volume-name"] == "gpu"
    assert new["resources"] == {
        "cpu_guarantee": 0.5,
        "cpu_limit": 0.5,
        "mem_guarantee": "1024M",
        "mem_limit": "1024M",
        "storage_capacity": "20G",
    }
    default_server = wire(provision(basic_plan(namespace, volume=VolumeChoice(volume_name="", size_gb=1))))
    assert default_server["storage_extra_labels"]["hub.jupyter.org/volume-name"] == "default"


def test_applying_twice_converges(kube, core_v1, networking, make_namespace) -> None:
    namespace, graph_ns = make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    plan = full_plan(namespace, graph_ns)
    first = provision(plan)
    spark_before = core_v1.read_namespaced_config_map("jhub-spark-config-alice", namespace)
    second = provision(plan)
    spark_after = core_v1.read_namespaced_config_map("jhub-spark-config-alice", namespace)

    assert second.objects == first.objects
    assert second.reply == first.reply
    assert spark_after.data == spark_before.data
    assert spark_after.metadata.uid == spark_before.metadata.uid
    assert _our_objects(core_v1, networking, namespace) == set(first.objects)
    assert len(first.objects) == 7


def test_a_new_spawn_removes_what_the_old_one_needed(kube, core_v1, networking, make_namespace) -> None:
    namespace, graph_ns, elsewhere = make_namespace(), make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    old = provision(full_plan(elsewhere, graph_ns))
    assert {ref.namespace for ref in old.objects} == {elsewhere}

    new = provision(basic_plan(namespace, hdfs=full_plan(namespace, graph_ns).hdfs))
    assert _our_objects(core_v1, networking, elsewhere) == set()
    assert _our_objects(core_v1, networking, namespace) == set(new.objects)


def test_odd_usernames_get_valid_distinct_names(kube, core_v1, networking, namespace) -> None:
    odd = ("Jo.Smith@Example.ORG" + "x" * 80)[:80]
    assert len(odd) == 80
    others = ["jo.smith@example.org" + "x" * 60, "Jo.Smith@x", "jo-smith-x"]
    spark = SparkChoice(
        image="example.org/spark:3.5", executor_cpu=1, executor_mem_mb=512, ingress_path="/{{USERNAME}}"
    )
    made: dict[str, set[ObjectRef]] = {}
    for number, username in enumerate([odd, *others]):
        plan = basic_plan(
            namespace,
            username=username,
            server_name="Lab One",
            pod_name=f"jupyter-{number}",
            hdfs=full_plan(namespace, namespace).hdfs,
            spark=spark,
        )
        result = provision(plan)
        made[username] = set(result.objects)
        for ref in result.objects:
            assert len(ref.name) <= 63
            assert names.DNS1123_LABEL.match(ref.name), ref.name
        config = core_v1.read_namespaced_config_map(
            next(ref.name for ref in result.objects if ref.name.startswith("jhub-hadoop-config-")), namespace
        )
        assert config.metadata.annotations["optionsportal.io/username"] == username
        assert config.metadata.annotations["optionsportal.io/servername"] == "Lab One"
        assert names.LABEL_VALUE.match(config.metadata.labels[LABEL_USERNAME])
        exports = dict(
            shlex.split(line)[1].split("=", 1)
            for line in config.data["hadoop-env.sh"].splitlines()
            if line.startswith("export ")
        )
        assert exports["HADOOP_USER_NAME"] == username

    all_refs = [ref for refs in made.values() for ref in refs]
    assert len(all_refs) == len(set(all_refs)) == 4 * 4
    assert _our_objects(core_v1, networking, namespace) == set(all_refs)


def test_a_refused_apply_raises_and_leaves_no_new_objects(kube, core_v1, networking, namespace) -> None:
    # An operator's ingress host the apiserver rejects: the other objects were
    # applied side by side and must be taken back.
    spark = SparkChoice(image="example.org/spark:3.5", executor_cpu=1, executor_mem_mb=512, ingress_host="Not A Host!")
    plan = basic_plan(namespace, hdfs=full_plan(namespace, namespace).hdfs, spark=spark)
    with pytest.raises(KubeError, match="Ingress") as refused:
        provision(plan)
    assert refused.value.status == 422
    assert _our_objects(core_v1, networking, namespace) == set()


def test_unreachable_apiserver_is_reported_quickly(settings, tmp_path: Path, kube_cluster) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "gone",
                        "cluster": {
                            "server": f"https://127.0.0.1:{closed_port}",
                            "certificate-authority": kube_cluster.ca_file,
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"token": "x"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "admin"}}],
                "current-context": "gone",
            }
        )
    )
    settings.KUBECONFIG = str(kubeconfig)
    settings.KUBE_REQUEST_TIMEOUT = 2.0
    reset_api_client()
    try:
        started = time.monotonic()
        with pytest.raises(KubeUnavailable, match="cannot be reached"):
            provision(full_plan("nowhere", "elsewhere"))
        assert time.monotonic() - started < 3
    finally:
        reset_api_client()


def test_reply_is_json(kube, namespace) -> None:
    reply = wire(provision(full_plan(namespace, namespace, gaffer=None)))
    assert json.loads(json.dumps(reply)) == reply


def test_provision_latency_for_a_full_plan(kube, core_v1, make_namespace) -> None:
    """A full plan applies its objects side by side: far below one round trip per object in sequence."""
    namespace, graph_ns = make_namespace(), make_namespace()
    create_graph(core_v1, graph_ns)
    plan = full_plan(namespace, graph_ns)
    provision(plan)  # the first call also opens connections
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        provision(replace(plan))
        timings.append(time.perf_counter() - started)
    print(f"provision() full plan: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")
    assert sorted(timings)[2] < 1.0
