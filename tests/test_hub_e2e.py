"""End to end through a real JupyterHub: our spawner, the portal under gunicorn, the real test apiserver.

The portal process and this test share pytest-django's test database: the test seeds rows with
the ORM under ``transactional_db`` (so they are committed and visible to gunicorn's workers), and
gunicorn is pointed at the same database by name. There is no kubelet, so the notebook Pod stays
Pending: the test checks the Pod object KubeSpawner created, then stops the server while it is
still pending, which JupyterHub allows (it interrupts the spawn and calls the spawner's stop()).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from inventory.models import (
    AccessRule,
    GafferGraph,
    GuaranteePolicy,
    HdfsInstance,
    MachineType,
    Namespace,
    NamespaceOption,
    Profile,
    ResourcePreset,
    ServiceAccount,
)
from inventory.sync import sync_full_round
from spawning.models import SpawnRecord
from tests import test_compute_cluster
from tests.hubsupport import Hub, Process, database_url, login, start_hub, start_portal, wait_for

# The portal and the hub run as processes of their own, on the test's PostgreSQL database.
pytestmark = [pytest.mark.e2e, pytest.mark.kube, pytest.mark.postgresql]

HUB_TOKEN = "hub-e2e-" + secrets.token_hex(8)
GPU = "nvidia.com/gpu"
# Nodes made through the API with a kubelet's status, deleted after the test.
make_node = test_compute_cluster.make_node
IMAGE = "registry.example.org/notebooks/gaffer-pyspark:1.4"
SPARK_IMAGE = "registry.example.org/spark/spark-py:3.5"
ROLE_ARN = "arn:aws:iam::123456789012:role/notebooks/analyst-role"
MANAGED = "app.kubernetes.io/managed-by=options-portal"
FORM_FIELDS = (
    "profile",
    "resources_cpu",
    "resources_mem",
    "k8s_namespace",
    "volume",
    "volume_name",
    "resources_hdd",
    "k8s_service_account",
    "hdfs",
    "gaffer_graph",
    "spark_cpu",
    "spark_mem",
)


class World:
    """What the test seeded: namespaces, ids and the objects the form offers."""

    def __init__(self, hub_ns: str, team_ns: str, graph_ns: str) -> None:
        self.hub_ns = hub_ns
        self.team_ns = team_ns
        self.graph_ns = graph_ns
        self.hdfs_id = f"{graph_ns}:hdfs"
        self.graph_id = f"{graph_ns}:roads"
        self.sa_id = f"{team_ns}:analyst"
        self.hdfs_url = f"hdfs://hdfs-namenode.{graph_ns}.svc:8020"
        self.graph_url = f"http://roads-api.{graph_ns}.svc:80/rest"


@pytest.fixture
def world(transactional_db: None, make_namespace, core_v1: k8s.CoreV1Api) -> World:
    hub_ns, team_ns, graph_ns = make_namespace(), make_namespace(), make_namespace()
    w = World(hub_ns, team_ns, graph_ns)

    # The Gaffer graph's objects really exist: the portal copies them into the notebook's namespace.
    labels = {"app.kubernetes.io/name": "gaffer", "app.kubernetes.io/instance": "roads"}
    graph_files = {"graphConfig.json": '{"graphId": "roads", "description": "Road traffic"}'}
    schema_files = {"elements.json": '{"entities": {}}', "types.json": '{"types": {}}'}
    core_v1.create_namespaced_config_map(
        graph_ns,
        {
            "metadata": {
                "name": "roads-graph-config",
                "labels": {**labels, "app.kubernetes.io/component": "graph-config"},
            },
            "data": graph_files,
        },
    )
    core_v1.create_namespaced_config_map(
        graph_ns,
        {
            "metadata": {"name": "roads-schema", "labels": {**labels, "app.kubernetes.io/component": "schema"}},
            "data": schema_files,
        },
    )
    store = "gaffer.store.class=uk.gov.gchq.gaffer.accumulostore.AccumuloStore\n"
    core_v1.create_namespaced_secret(
        graph_ns,
        {
            "metadata": {
                "name": "roads-store-properties",
                "labels": {**labels, "app.kubernetes.io/component": "store-properties"},
            },
            "data": {"store.properties": base64.b64encode(store.encode()).decode()},
        },
    )
    # The pod names this account; the apiserver refuses a pod whose service account is missing.
    core_v1.create_namespaced_service_account(
        team_ns,
        {
            "metadata": {
                "name": "analyst",
                "labels": {"hub.jupyter.org/notebook-service-account": "true"},
                "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN},
            }
        },
    )

    for name in (hub_ns, team_ns, graph_ns):
        Namespace.objects.create(name=name)
    NamespaceOption.objects.create(pattern=hub_ns, description="The hub's namespace", order=0)
    NamespaceOption.objects.create(pattern=team_ns, description="Team analytics", order=1)
    HdfsInstance.objects.create(
        key=w.hdfs_id, namespace=graph_ns, name="hdfs", observed_url=w.hdfs_url, display_name="Main HDFS"
    )
    GafferGraph.objects.create(
        key=w.graph_id,
        namespace=graph_ns,
        name="roads",
        observed_url=w.graph_url,
        observed_description="Road traffic",
        api_service="roads-api",
        graph_config_map="roads-graph-config",
        graph_config_files=graph_files,
        schema_config_map="roads-schema",
        schema_files=schema_files,
        store_secret="roads-store-properties",
    )
    account = ServiceAccount.objects.create(key=w.sa_id, namespace=team_ns, name="analyst", observed_role_arn=ROLE_ARN)
    # Only the "analysts" JupyterHub group may use the account: it is offered only if the hub sends groups.
    rule = AccessRule.objects.create(name="analysts use the analyst account", groups=["analysts"])
    rule.service_accounts.add(account)
    Profile.objects.create(
        slug="gaffer-pyspark",
        display_name="Gaffer with PySpark",
        description="HDFS, Gaffer and Spark",
        image=IMAGE,
        default=True,
        enable_hdfs=True,
        enable_gaffer=True,
        enable_spark=True,
        spark_image=SPARK_IMAGE,
    )
    Profile.objects.create(slug="minimal", display_name="Minimal", image="registry.example.org/minimal:1", order=1)
    ResourcePreset.objects.create(
        slug="small",
        display_name="Small",
        default=True,
        cpu=Decimal("0.5"),
        cpu_max=Decimal("2"),
        mem=1024,
        mem_max=4096,
    )
    return w


@pytest.fixture
def e2e_dir(tmp_path: Path) -> Path:
    (tmp_path / "hub").mkdir()
    return tmp_path


@pytest.fixture
def start_portal_for(world: World, kube_cluster, e2e_dir: Path) -> Iterator:
    """Start the portal under gunicorn on the test database; stopped before the database is flushed."""
    if connection.vendor != "postgresql":
        pytest.fail("The hub end-to-end tests need PostgreSQL: gunicorn must share the test database", pytrace=False)
    started: list[Process] = []

    def start(env: dict[str, str]) -> str:
        process, url = start_portal(
            db_url=database_url(connection.settings_dict),
            kubeconfig=kube_cluster.kubeconfig,
            env_extra=env,
            log_dir=e2e_dir,
        )
        started.append(process)
        return url

    yield start
    for process in started:
        process.stop()


def _hub(world: World, kube_cluster, e2e_dir: Path, *, spawner_class: str, portal_url: str, token: str) -> Hub:
    return start_hub(
        state=e2e_dir / "hub",
        kubeconfig=kube_cluster.kubeconfig,
        spawner_class=spawner_class,
        portal_url=portal_url,
        portal_token=token,
        namespace=world.hub_ns,
        log_dir=e2e_dir,
    )


def _notebook_pod(core_v1: k8s.CoreV1Api, namespace: str, hub: Hub) -> k8s.V1Pod:
    def find() -> k8s.V1Pod | None:
        hub.process.check_alive()
        pods = core_v1.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
        return pods[0] if pods else None

    return wait_for(find, timeout=30, what=f"the notebook pod in {namespace}")


def _made_by_portal(core_v1: k8s.CoreV1Api, namespace: str) -> list[str]:
    selector = f"{MANAGED},hub.jupyter.org/username=alice"
    return sorted(
        [
            f"ConfigMap/{o.metadata.name}"
            for o in core_v1.list_namespaced_config_map(namespace, label_selector=selector).items
        ]
        + [
            f"Secret/{o.metadata.name}"
            for o in core_v1.list_namespaced_secret(namespace, label_selector=selector).items
        ]
        + [
            f"Service/{o.metadata.name}"
            for o in core_v1.list_namespaced_service(namespace, label_selector=selector).items
        ]
    )


def _stop_server(hub: Hub, core_v1: k8s.CoreV1Api, pod: k8s.V1Pod) -> None:
    reply = hub.api("DELETE", "/users/alice/server")
    assert reply.status_code in (202, 204), reply.text

    def pod_gone() -> bool:
        try:
            core_v1.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(pod_gone, timeout=30, what="the notebook pod to be deleted")
    wait_for(
        lambda: hub.api("GET", "/users/alice").json()["servers"] == {},
        timeout=30,
        what="JupyterHub to record the server as stopped",
    )


def _env(pod: k8s.V1Pod) -> dict[str, str]:
    container = next(c for c in pod.spec.containers if c.name == "notebook")
    return {e.name: e.value for e in container.env or [] if e.value is not None}


def _mounts(pod: k8s.V1Pod) -> dict[str, k8s.V1VolumeMount]:
    container = next(c for c in pod.spec.containers if c.name == "notebook")
    return {m.mount_path.rstrip("/"): m for m in container.volume_mounts or []}


def _assert_pod_carries_choices(pod: k8s.V1Pod, world: World, core_v1: k8s.CoreV1Api, *, sa: bool) -> None:
    container = next(c for c in pod.spec.containers if c.name == "notebook")
    assert pod.metadata.namespace == world.team_ns
    assert container.image == IMAGE
    requests_, limits = container.resources.requests, container.resources.limits
    assert parse_quantity(requests_["cpu"]) == parse_quantity(limits["cpu"]) == Decimal("1.5")
    # KubeSpawner reads "2048M" as 2048 MiB, as the original deployment's hub did.
    assert parse_quantity(requests_["memory"]) == parse_quantity(limits["memory"]) == 2048 * 1024 * 1024
    if sa:
        assert pod.spec.service_account_name == "analyst"

    env = _env(pod)
    assert env["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"
    assert env["HADOOP_USER_NAME"] == "alice"
    assert env["GAFFER_REST_API_URL"] == world.graph_url
    assert "SPARK_UI_URL" in env

    volumes = {v.name: v for v in pod.spec.volumes}
    mounts = _mounts(pod)
    for path in ("/etc/hadoop/conf", "/etc/gaffer/graph", "/etc/gaffer/schema", "/etc/gaffer/store", "/opt/spark/conf"):
        assert path in mounts, f"no mount at {path}: {sorted(mounts)}"
        assert mounts[path].read_only, path
    assert mounts["/home/jovyan"].name == "home", "the hub's own volumes are kept"
    assert volumes["home"].persistent_volume_claim.claim_name == "claim-alice"

    # Every ConfigMap and Secret the pod mounts exists in the notebook's namespace.
    for path in ("/etc/hadoop/conf", "/etc/gaffer/graph", "/etc/gaffer/schema", "/opt/spark/conf"):
        config_map = volumes[mounts[path].name].config_map
        assert config_map is not None, path
        made = core_v1.read_namespaced_config_map(config_map.name, world.team_ns)
        assert made.metadata.labels["app.kubernetes.io/managed-by"] == "options-portal"
    hadoop = core_v1.read_namespaced_config_map(volumes[mounts["/etc/hadoop/conf"].name].config_map.name, world.team_ns)
    assert world.hdfs_url in hadoop.data["core-site.xml"]
    spark = core_v1.read_namespaced_config_map(volumes[mounts["/opt/spark/conf"].name].config_map.name, world.team_ns)
    assert SPARK_IMAGE in spark.data["spark-defaults.conf"]
    assert "spark.executor.memory" in spark.data["spark-defaults.conf"]
    store = volumes[mounts["/etc/gaffer/store"].name].secret
    assert core_v1.read_namespaced_secret(store.secret_name, world.team_ns).data["store.properties"]

    # The new home volume has the size chosen and the portal's storage labels.
    pvc = core_v1.read_namespaced_persistent_volume_claim("claim-alice", world.team_ns)
    assert parse_quantity(pvc.spec.resources.requests["storage"]) == parse_quantity("5G")
    assert pvc.metadata.labels.get("hub.jupyter.org/volume-name") == "scratch"


def _assert_pod_selected_by_spark_driver(pod: k8s.V1Pod, record: SpawnRecord, core_v1: k8s.CoreV1Api) -> None:
    """The reply's labels reach the pod, so the Spark driver Service the portal made selects it."""
    for key, value in record.reply["labels"].items():
        assert pod.metadata.labels.get(key) == value, key
    services = core_v1.list_namespaced_service(
        pod.metadata.namespace, label_selector=f"{MANAGED},app.kubernetes.io/component=spark-driver"
    ).items
    assert len(services) == 1
    assert services[0].spec.selector.items() <= pod.metadata.labels.items()


@pytest.mark.browser
def test_spawn_through_jupyterhub(
    world: World, kube_cluster, core_v1, e2e_dir: Path, artifacts_dir: Path, start_portal_for
) -> None:
    from playwright.sync_api import sync_playwright

    portal_url = start_portal_for({"OPTIONS_PORTAL_HUB_TOKEN": HUB_TOKEN})
    hub = _hub(
        world,
        kube_cluster,
        e2e_dir,
        spawner_class="optionsportal_hub.OptionsPortalSpawner",
        portal_url=portal_url,
        token=HUB_TOKEN,
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(10_000)
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "alice")
            page.fill("#password_input", hub.password)
            page.click("#login_submit")
            page.wait_for_url(re.compile(r".*/hub/(spawn|home).*"))
            page.goto(f"{hub.url}/hub/spawn")
            form = page.locator("#spawn_form")
            for field in FORM_FIELDS:
                assert form.locator(f'[name="{field}"]').count() >= 1, f"the form has no {field}"
            form.locator('input[name="profile"][value="gaffer-pyspark"]').check()
            form.locator('select[name="k8s_namespace"]').select_option(world.team_ns)
            # Offered only because the hub sent alice's "analysts" group.
            assert form.locator(f'#op-k8s-service-account option[value="{world.sa_id}"]').count() == 1
            form.locator('select[name="k8s_service_account"]').select_option(world.sa_id)
            form.locator("#op-preset-custom").check()
            form.locator('input[name="resources_cpu"]').fill("1.5")
            form.locator('input[name="resources_mem"]').fill("2048")
            form.locator('select[name="volume"]').select_option("")
            form.locator('input[name="volume_name"]').fill("scratch")
            form.locator('input[name="resources_hdd"]').fill("5")
            form.locator('select[name="hdfs"]').select_option(world.hdfs_id)
            form.locator('select[name="gaffer_graph"]').select_option(world.graph_id)
            form.locator('input[name="spark_cpu"]').fill("2")
            form.locator('input[name="spark_mem"]').fill("1024")
            page.screenshot(path=str(artifacts_dir / "hub-spawn-page.png"), full_page=True)
            form.locator('[type="submit"]').click()
            page.wait_for_url(re.compile(r".*/hub/spawn-pending/alice.*"), timeout=20_000)
            browser.close()

        pod = _notebook_pod(core_v1, world.team_ns, hub)
        _assert_pod_carries_choices(pod, world, core_v1, sa=True)
        record = SpawnRecord.objects.filter(username="alice", result=SpawnRecord.Result.PROVISIONED).get()
        assert record.groups == ["analysts"]
        _assert_pod_selected_by_spark_driver(pod, record, core_v1)
        assert record.iam_role_arn == ROLE_ARN
        assert _made_by_portal(core_v1, world.team_ns), "the portal made nothing in the notebook's namespace"

        _stop_server(hub, core_v1, pod)
        wait_for(
            lambda: _made_by_portal(core_v1, world.team_ns) == [],
            timeout=20,
            what="/poststop to remove what /prespawn made",
        )
        assert SpawnRecord.objects.filter(username="alice", result=SpawnRecord.Result.STOPPED).exists()
    except BaseException:
        print(hub.process.log()[-6000:])
        print((e2e_dir / "portal.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        hub.process.stop()


def _form_action(hub: Hub, html: str) -> str:
    """The spawn form's action URL, which carries JupyterHub's _xsrf token."""
    found = re.search(r'id="spawn_form"[^>]*?action="([^"]+)"', html, re.S)
    assert found, "the spawn page has no spawn form"
    return hub.url + found.group(1).replace("&amp;", "&")


def test_original_request_shapes_with_anonymous_hub(
    world: World, kube_cluster, core_v1, e2e_dir: Path, start_portal_for
) -> None:
    portal_url = start_portal_for({"OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB": "true", "OPTIONS_PORTAL_HUB_TOKEN": ""})
    hub = _hub(
        world,
        kube_cluster,
        e2e_dir,
        spawner_class="optionsportal_hub.OriginalShapeSpawner",
        portal_url=portal_url,
        token="",
    )
    try:
        session = login(hub, "alice")
        page = session.get(f"{hub.url}/hub/spawn", timeout=30)
        assert page.status_code == 200, page.text[:2000]
        for field in FORM_FIELDS:
            assert f'name="{field}"' in page.text, f"the form has no {field}"
        # The original hub sends no groups, so the group-only account is not offered.
        assert world.sa_id not in page.text

        choices: dict[str, Any] = {
            "profile": "gaffer-pyspark",
            "resource_preset": "",
            "resources_cpu": "1.5",
            "resources_mem": "2048",
            "k8s_namespace": world.team_ns,
            "volume": "",
            "volume_name": "scratch",
            "resources_hdd": "5",
            "k8s_service_account": "",
            "hdfs": world.hdfs_id,
            "gaffer_graph": world.graph_id,
            "spark_cpu": "2",
            "spark_mem": "1024",
        }
        # A refused choice comes back to the user as a sentence, not a traceback.
        refused = session.post(
            _form_action(hub, page.text),
            data={**choices, "resources_cpu": "64"},
            timeout=30,
            allow_redirects=False,
        )
        if refused.status_code == 302:
            # JupyterHub answers after slow_spawn_timeout even if the spawn has not ended
            # (a busy machine); the refusal then shows on the spawn-pending page.
            location = refused.headers["Location"]
            pending = f"{hub.url}{location}" if location.startswith("/") else location

            def refusal_shown() -> str | None:
                # The page answers 400 once the spawn has failed: a falsy Response, so return its text.
                text = session.get(pending, timeout=30).text
                return text if "Your choices were refused" in text else None

            message = wait_for(refusal_shown, timeout=60, what="the refusal on the spawn-pending page")
        else:
            assert refused.status_code == 400, refused.text[:2000]
            message = refused.text
        assert "Your choices were refused" in message
        assert "resources_cpu" in message
        assert "Traceback" not in message
        assert core_v1.list_namespaced_pod(world.team_ns).items == []

        form = session.get(f"{hub.url}/hub/spawn", timeout=30)
        started = session.post(
            _form_action(hub, form.text),
            data=choices,
            timeout=30,
            allow_redirects=False,
        )
        assert started.status_code == 302, started.text[:2000]
        pod = _notebook_pod(core_v1, world.team_ns, hub)
        _assert_pod_carries_choices(pod, world, core_v1, sa=False)
        record = SpawnRecord.objects.filter(username="alice", result=SpawnRecord.Result.PROVISIONED).get()
        assert record.groups == []
        _assert_pod_selected_by_spark_driver(pod, record, core_v1)

        _stop_server(hub, core_v1, pod)
        # The original hub config never called anything on stop: nothing is removed until the sweep.
        assert _made_by_portal(core_v1, world.team_ns)
        assert not SpawnRecord.objects.filter(username="alice", result=SpawnRecord.Result.STOPPED).exists()
    except BaseException:
        print(hub.process.log()[-6000:])
        print((e2e_dir / "portal.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        hub.process.stop()


def test_spawn_on_a_gpu_machine_type(
    world: World, kube, kube_cluster, core_v1, e2e_dir: Path, start_portal_for, make_node
) -> None:
    """The form offers the GPU machine type with what is free; the Pod KubeSpawner makes carries its placement."""
    pool = f"gpu-{secrets.token_hex(3)}"
    make_node(
        pool=pool, cpu="8", memory="64Gi", gpus=4, taints=[{"key": GPU, "value": "present", "effect": "NoSchedule"}]
    )
    toleration = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
    affinity = {"matchExpressions": [{"key": "pool", "operator": "In", "values": [pool]}]}
    MachineType.objects.create(
        slug="gpu",
        display_name="GPU node",
        node_selector={"pool": pool},
        tolerations=[toleration],
        node_affinity={"nodeSelectorTerms": [affinity]},
        extended_resources={GPU: [0, 1, 2]},
        guarantee_policy=GuaranteePolicy.RATIO,
        guarantee_ratio=Decimal("0.5"),
    )
    # The node reaches the inventory as the sync sees it.
    sync_full_round()

    portal_url = start_portal_for({"OPTIONS_PORTAL_HUB_TOKEN": HUB_TOKEN})
    hub = _hub(
        world,
        kube_cluster,
        e2e_dir,
        spawner_class="optionsportal_hub.OptionsPortalSpawner",
        portal_url=portal_url,
        token=HUB_TOKEN,
    )
    try:
        session = login(hub, "alice")
        page = session.get(f"{hub.url}/hub/spawn", timeout=30)
        assert page.status_code == 200, page.text[:2000]
        assert 'name="machine_type" id="op-machine-type-1"' in page.text
        assert "4 of 4 GPUs free" in page.text
        choices: dict[str, Any] = {
            "profile": "minimal",
            "machine_type": "gpu",
            f"gpus_{GPU}": "1",
            "resource_preset": "custom",
            "resources_cpu": "2",
            "resources_mem": "4096",
            "k8s_namespace": world.team_ns,
            "volume": "",
            "volume_name": "scratch",
            "resources_hdd": "5",
            "k8s_service_account": "",
        }
        started = session.post(_form_action(hub, page.text), data=choices, timeout=30, allow_redirects=False)
        assert started.status_code == 302, started.text[:2000]
        pod = _notebook_pod(core_v1, world.team_ns, hub)
        container = next(c for c in pod.spec.containers if c.name == "notebook")
        assert pod.spec.node_selector == {"pool": pool}
        assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in [
            {"key": t.key, "operator": t.operator, "effect": t.effect} for t in pod.spec.tolerations or []
        ]
        required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        assert [
            [(e.key, e.operator, e.values) for e in term.match_expressions] for term in required.node_selector_terms
        ] == [[("pool", "In", [pool])]]
        requests_, limits = container.resources.requests, container.resources.limits
        assert parse_quantity(requests_[GPU]) == parse_quantity(limits[GPU]) == 1
        # Half the limits is guaranteed (the machine type's policy).
        assert parse_quantity(requests_["cpu"]) == 1 and parse_quantity(limits["cpu"]) == 2
        assert parse_quantity(requests_["memory"]) == 2048 * 2**20
        assert parse_quantity(limits["memory"]) == 4096 * 2**20
        record = SpawnRecord.objects.filter(username="alice", result=SpawnRecord.Result.PROVISIONED).get()
        assert record.choices["machine_type"] == "gpu"
        assert record.reply["kubespawner_override"]["extra_resource_limits"] == {GPU: "1"}
        _stop_server(hub, core_v1, pod)
    except BaseException:
        print(hub.process.log()[-6000:])
        print((e2e_dir / "portal.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        hub.process.stop()
