"""The hub API under load: POST /options and POST /prespawn against a realistic inventory.

Run by hand (never in the test suite); see bench/README.md:

    scripts/test-kube.sh start /tmp/kube-bench
    psql postgres://postgres@127.0.0.1:5432/postgres -c "CREATE DATABASE op_bench"
    .venv/bin/pip install -r bench/requirements.txt        # matplotlib, for the plot
    apt-get install -y wrk
    .venv/bin/python bench/portal_bench.py --kube-dir /tmp/kube-bench \\
        --database-url postgres://postgres@127.0.0.1:5432/op_bench --json bench/results.json --plot docs/bench-hub-api.png

What it does, in order:

1. fills the apiserver with the inventory of a mid-sized deployment (200
   namespaces, 50 HDFS namenode Services, 50 Gaffer graphs with their API
   Service, graph-config and schema ConfigMaps and store-properties Secret,
   500 notebook service accounts, 1,000 notebook PVCs), labelled as the
   original options server discovered them; objects already there are kept;
2. migrates the database, runs one ``sync_cluster --once`` round, loads the
   demo configuration (profiles, presets, namespace options, access rules);
3. counts the SQL queries of one /options and one /prespawn in-process
   (Django test client) and times single apiserver calls;
4. starts the portal under gunicorn (2 workers, gunicorn.conf.py, DEBUG off)
   and drives each endpoint with wrk from a second process at each
   concurrency for a fixed duration; /prespawn bodies change the user and
   server name every request, so each one creates real objects;
5. reads the workers' resident memory from /proc, prints everything, and
   writes the figures as JSON and a plot.

The database it is pointed at is used as it is: give it one of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "bench-hub-token-" + "0" * 16  # a throwaway token for a local bench

USERS = 190
TEAMS = 8
GROUPS = ["data-science"]
PROFILE = "gaffer-pyspark"
HDFS_CHOICE = "analytics:hdfs-03"
GRAPH_CHOICE = "analytics:graph-03"
IN_PROCESS_SPAWNS = 20  # /prespawns whose apiserver cost is measured in-process


def user(index: int) -> str:
    return f"u{index % USERS:03d}"


# --- 1. The cluster ------------------------------------------------------------------------------


@dataclass
class Inventory:
    """How many of each kind the bench put in the cluster."""

    namespaces: int = 0
    hdfs: int = 0
    graphs: int = 0
    service_accounts: int = 0
    volumes: int = 0


def _labels(name: str, component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": instance,
    }


def inventory_manifests() -> tuple[list[str], list[tuple[str, str, dict[str, Any]]]]:
    """Namespaces, then (kind, namespace, body) for every labelled object."""
    users = [f"user-{user(i)}" for i in range(USERS)]
    teams = [f"team-{i:02d}" for i in range(TEAMS)]
    namespaces = ["analytics", *teams, *users]
    shared = ["analytics", *teams]
    objects: list[tuple[str, str, dict[str, Any]]] = []

    for i in range(50):
        ns = "analytics" if i < 10 else teams[i % TEAMS]
        name = f"hdfs-{i:02d}"
        objects.append(
            (
                "service",
                ns,
                {
                    "metadata": {"name": f"{name}-namenodes", "labels": _labels("hdfs", "namenode", name)},
                    "spec": {"ports": [{"name": "client-rpc", "port": 8020}, {"name": "http", "port": 9870}]},
                },
            )
        )
    for i in range(50):
        ns = "analytics" if i < 10 else teams[i % TEAMS]
        graph = f"graph-{i:02d}"
        description = f"Graph {i}: road traffic counts for region {i % 12}, updated nightly."
        objects += [
            (
                "service",
                ns,
                {
                    "metadata": {"name": f"{graph}-api", "labels": _labels("gaffer", "api", graph)},
                    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                },
            ),
            (
                "config_map",
                ns,
                {
                    "metadata": {"name": f"{graph}-graph-config", "labels": _labels("gaffer", "graph-config", graph)},
                    "data": {"graphConfig.json": json.dumps({"graphId": graph, "description": description})},
                },
            ),
            (
                "config_map",
                ns,
                {
                    "metadata": {"name": f"{graph}-schema", "labels": _labels("gaffer", "schema", graph)},
                    "data": {
                        "elements.json": json.dumps({"entities": {"Junction": {"vertex": "junction"}}, "edges": {}}),
                        "types.json": json.dumps({"types": {"junction": {"class": "java.lang.String"}}}),
                    },
                },
            ),
            (
                "secret",
                ns,
                {
                    "metadata": {
                        "name": f"{graph}-store-properties",
                        "labels": _labels("gaffer", "store-properties", graph),
                    },
                    "stringData": {"store.properties": f"gaffer.store.class=AccumuloStore\npassword={graph}-secret\n"},
                },
            ),
        ]
    for i in range(500):
        if i < 30:
            ns, name, allowed = shared[i % len(shared)], f"shared-{i:02d}", ",".join(user(i * 7 + k) for k in range(5))
        else:
            ns, name, allowed = users[i % len(users)], f"notebook-{(i - 30) // len(users)}", ""
        annotations = {"eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/notebooks/{ns}-{name}"}
        if allowed:
            annotations["hub.jupyter.org/users"] = allowed
        objects.append(
            (
                "service_account",
                ns,
                {
                    "metadata": {
                        "name": name,
                        "labels": {"hub.jupyter.org/notebook-service-account": "true"},
                        "annotations": annotations,
                    }
                },
            )
        )
    for i in range(1000):
        owner_index = i % len(users)
        ns = "analytics" if i % 20 == 19 else users[owner_index]
        server = "" if i < len(users) else f"s{i // len(users)}"
        volume = server or "default"
        objects.append(
            (
                "persistent_volume_claim",
                ns,
                {
                    "metadata": {
                        "name": f"claim-{user(owner_index)}-{volume}-{i}",
                        "labels": {
                            "app.kubernetes.io/name": "jupyterhub",
                            "app.kubernetes.io/component": "notebook-volume",
                            "hub.jupyter.org/username": user(owner_index),
                            "hub.jupyter.org/servername": server,
                            "hub.jupyter.org/volume-name": volume,
                        },
                    },
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
                },
            )
        )
    return namespaces, objects


def fill_cluster(kubeconfig: str) -> Inventory:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException

    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 16
    core = k8s.CoreV1Api(k8s.ApiClient(configuration))
    namespaces, objects = inventory_manifests()

    def created(call: Callable[[], Any]) -> int:
        try:
            call()
        except ApiException as exc:
            if exc.status != 409:
                raise
            return 0
        return 1

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda ns: created(lambda: core.create_namespace({"metadata": {"name": ns}})), namespaces))
        made = sum(
            pool.map(
                lambda o: created(
                    lambda: getattr(core, f"create_namespaced_{o[0]}")(o[1], o[2], _preload_content=False)
                ),
                objects,
            )
        )
    print(f"cluster: {len(namespaces) + 1} namespaces (with default), {len(objects)} labelled objects, {made} new")
    return Inventory(
        namespaces=len(namespaces) + 1,
        hdfs=sum(
            1 for kind, _, body in objects if kind == "service" and body["metadata"]["name"].endswith("-namenodes")
        ),
        graphs=sum(1 for kind, _, _ in objects if kind == "secret"),
        service_accounts=sum(1 for kind, _, _ in objects if kind == "service_account"),
        volumes=sum(1 for kind, _, _ in objects if kind == "persistent_volume_claim"),
    )


# --- The apiserver's own counters ----------------------------------------------------------------


_REQUEST_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class ApiserverReading:
    """The apiserver's request counters by verb and resource, and its and etcd's CPU seconds, at one moment."""

    requests: dict[str, float]
    apiserver_cpu_s: float
    etcd_cpu_s: float


class ApiserverMeter:
    """Reads the test apiserver's ``/metrics`` (with the kubeconfig's admin token) and its and etcd's CPU time.

    Request counts and CPU per request do not move with the machine's load the way
    wall-clock latency does, so they compare runs made at different times.
    """

    def __init__(self, kube_dir: str) -> None:
        import ssl

        env = dict(line.split("=", 1) for line in Path(kube_dir, "env").read_text().splitlines() if "=" in line)
        self.url = env["KUBE_TEST_SERVER"] + "/metrics"
        self.token = env["KUBE_TEST_TOKEN"]
        self.context = ssl.create_default_context(cafile=env["KUBE_TEST_CA"])
        self.pids = {name: int(Path(kube_dir, f"{name}.pid").read_text()) for name in ("apiserver", "etcd")}

    @staticmethod
    def _cpu_seconds(pid: int) -> float:
        # utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def read(self) -> ApiserverReading:
        request = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {self.token}"})  # noqa: S310
        with urllib.request.urlopen(request, context=self.context, timeout=10) as reply:  # noqa: S310
            text = reply.read().decode()
        requests: dict[str, float] = {}
        for match in _REQUEST_LINE.finditer(text):
            labels = dict(_LABEL.findall(match.group("labels")))
            if not labels.get("resource") or labels.get("verb") == "WATCH":
                continue
            key = f"{labels['verb']} {labels['resource']}"
            requests[key] = requests.get(key, 0.0) + float(match.group("value"))
        return ApiserverReading(
            requests=requests,
            apiserver_cpu_s=self._cpu_seconds(self.pids["apiserver"]),
            etcd_cpu_s=self._cpu_seconds(self.pids["etcd"]),
        )


@dataclass
class ApiserverCost:
    """What the apiserver did for a number of portal requests, per portal request."""

    portal_requests: int
    requests_per_request: dict[str, float]
    total_per_request: float
    apiserver_cpu_ms_per_request: float
    etcd_cpu_ms_per_request: float


def apiserver_cost(before: ApiserverReading, after: ApiserverReading, portal_requests: int) -> ApiserverCost:
    n = max(portal_requests, 1)
    per = {
        key: round((after.requests.get(key, 0.0) - before.requests.get(key, 0.0)) / n, 2)
        for key in sorted(after.requests)
    }
    per = {key: value for key, value in per.items() if value}
    return ApiserverCost(
        portal_requests=portal_requests,
        requests_per_request=per,
        total_per_request=round(sum(per.values()), 2),
        apiserver_cpu_ms_per_request=round((after.apiserver_cpu_s - before.apiserver_cpu_s) * 1000 / n, 2),
        etcd_cpu_ms_per_request=round((after.etcd_cpu_s - before.etcd_cpu_s) * 1000 / n, 2),
    )


def describe_cost(cost: ApiserverCost) -> str:
    calls = ", ".join(f"{key} {value:g}" for key, value in cost.requests_per_request.items()) or "none"
    return (
        f"apiserver per request: {cost.total_per_request:g} calls ({calls}); "
        f"CPU {cost.apiserver_cpu_ms_per_request:.2f} ms apiserver, {cost.etcd_cpu_ms_per_request:.2f} ms etcd"
    )


# --- 2. The database ----------------------------------------------------------------------------


def portal_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "KUBECONFIG": f"{args.kube_dir}/kubeconfig",
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + secrets.token_hex(16),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "OPTIONS_PORTAL_HUB_TOKEN": TOKEN,
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def manage(args: argparse.Namespace, *command: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=portal_env(args),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def prepare_database(args: argparse.Namespace) -> str:
    manage(args, "migrate", "--no-input", "-v", "0")
    started = time.monotonic()
    summary = manage(args, "sync_cluster", "--once").splitlines()[0]
    print(f"sync: {summary} ({time.monotonic() - started:.1f} s with start-up)")
    manage(args, "load_demo")
    return summary


_django_ready = False


def django_setup(args: argparse.Namespace) -> None:
    """The portal's code in this process, configured as the gunicorn workers are."""
    global _django_ready
    if _django_ready:
        return
    os.environ.update(portal_env(args))
    os.environ["DJANGO_SETTINGS_MODULE"] = "optionsportal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    _django_ready = True
    from inventory.models import NamespaceOption

    # Team namespaces, each for its own JupyterHub group (the bench user is in team-03).
    for index in range(TEAMS):
        NamespaceOption.objects.update_or_create(
            pattern=f"team-{index:02d}",
            defaults={"description": f"Team {index}", "groups": [f"team-{index:02d}"], "order": 40 + index},
        )


def fill_compute(args: argparse.Namespace) -> None:
    """Nodes, pods and machine types for /options to show capacity of (or none, with 0,0)."""
    django_setup(args)
    from compute_bench import fill_inventory

    from inventory.models import MachineType

    nodes, pods = (int(part) for part in args.compute.split(","))
    fill_inventory(nodes, pods)
    if not nodes:
        MachineType.objects.all().delete()
    print(f"compute: {nodes} nodes, {pods} pods, {MachineType.objects.count()} machine types")


# --- 3. Request bodies ---------------------------------------------------------------------------


def options_body(index: int) -> dict[str, Any]:
    name = user(index)
    return {
        "username": name,
        "server_name": "",
        "pod_name": f"jupyter-{name}",
        "default_namespace": f"user-{name}",
        "groups": [*GROUPS, "team-03"],
    }


def prespawn_body(index: int, server: str) -> dict[str, Any]:
    name = user(index)
    namespace = f"user-{name}"
    options = {
        "profile": PROFILE,
        "resource_preset": "medium",
        "resources_cpu": "1",
        "resources_mem": "2048",
        "k8s_namespace": namespace,
        "volume": "",
        "volume_name": server,
        "resources_hdd": "10",
        "k8s_service_account": f"{namespace}:notebook-0",
        "hdfs": HDFS_CHOICE,
        "gaffer_graph": GRAPH_CHOICE,
        "spark_cpu": "1",
        "spark_mem": "1024",
    }
    return {
        "username": name,
        "server_name": server,
        "pod_name": f"jupyter-{name}-{server}",
        "default_namespace": namespace,
        "groups": GROUPS,
        "profile": PROFILE,
        "user_options": {key: [value] for key, value in options.items()},
    }


# --- 4. In-process measurements ------------------------------------------------------------------


@dataclass
class InProcess:
    """Queries per request and apiserver call latency, measured inside this process."""

    options_queries: int = 0
    prespawn_queries: int = 0
    options_bytes: int = 0
    prespawn_objects: int = 0
    prespawn_reads: int = 0
    prespawn_lists: int = 0
    single_apply_ms: float = 0.0
    single_read_ms: float = 0.0
    prespawn_inprocess_ms: float = 0.0
    respawn_inprocess_ms: float = 0.0
    phases_ms: dict[str, float] = field(default_factory=dict)
    # What one /prespawn asks of the apiserver: a new server, then the same call again.
    prespawn_apiserver: dict[str, Any] = field(default_factory=dict)
    respawn_apiserver: dict[str, Any] = field(default_factory=dict)


def measure_in_process(args: argparse.Namespace) -> InProcess:
    django_setup(args)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from kube.provision import KINDS, ObjectRef, apply_object, read_config_source
    from spawning.models import SpawnRecord

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"token {TOKEN}")
    result = InProcess()
    client.post("/options", options_body(7), content_type="application/json")  # warm caches and connections
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/options", options_body(7), content_type="application/json")
    assert response.status_code == 200, response.content[:500]
    result.options_queries = len(captured.captured_queries)
    result.options_bytes = len(response.content)
    data = response.json()
    print(
        f"/options for {options_body(7)['username']}: {len(data['namespaces'])} namespaces, "
        f"{len(data['service_accounts'])} service accounts, {len(data['volumes'])} volumes, {len(data['hdfs'])} HDFS, "
        f"{len(data['gaffer_graphs'])} graphs, {result.options_bytes} bytes"
    )

    if "prespawn" not in args.endpoints.split(","):
        # Only /options asked for: its figures do not need the apiserver timings below.
        return result

    client.post("/prespawn", prespawn_body(7, "warm"), content_type="application/json")
    server = f"q{secrets.token_hex(3)}"
    started = time.monotonic()
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/prespawn", prespawn_body(7, server), content_type="application/json")
    result.prespawn_inprocess_ms = (time.monotonic() - started) * 1000
    assert response.status_code == 200, response.content[:500]
    result.prespawn_queries = len(captured.captured_queries)

    # The apiserver's cost of a /prespawn for a new server, then of the same calls again (a hub's
    # re-spawn). Several, one at a time: CPU time is counted in 10 ms clock ticks.
    meter = ApiserverMeter(args.kube_dir)
    servers = [f"q{secrets.token_hex(3)}" for _ in range(IN_PROCESS_SPAWNS)]
    before = meter.read()
    for index, name in enumerate(servers):
        response = client.post("/prespawn", prespawn_body(index, name), content_type="application/json")
        assert response.status_code == 200, response.content[:500]
    after = meter.read()
    result.prespawn_apiserver = asdict(apiserver_cost(before, after, len(servers)))
    started = time.monotonic()
    for index, name in enumerate(servers):
        response = client.post("/prespawn", prespawn_body(index, name), content_type="application/json")
        assert response.status_code == 200, response.content[:500]
    result.respawn_inprocess_ms = (time.monotonic() - started) * 1000 / len(servers)
    result.respawn_apiserver = asdict(apiserver_cost(after, meter.read(), len(servers)))
    record = SpawnRecord.objects.filter(server_name=server).latest("pk")
    result.prespawn_objects = len(record.cluster_objects)
    result.prespawn_reads = 3  # the graph's two ConfigMaps and its Secret, copied into the user's namespace
    result.prespawn_lists = len(KINDS)

    # One apply of a small ConfigMap and one read, each on its own, as the apiserver answers them.
    namespace = "user-" + user(7)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bench-single-apply", "namespace": namespace, "labels": {"bench": "true"}},
        "data": {"n": "0"},
    }
    applies, reads = [], []
    for n in range(30):
        manifest["data"] = {"n": str(n)}
        started = time.monotonic()
        apply_object(manifest)
        applies.append((time.monotonic() - started) * 1000)
        started = time.monotonic()
        read_config_source(ObjectRef("ConfigMap", "analytics", "graph-03-graph-config"))
        reads.append((time.monotonic() - started) * 1000)
    result.single_apply_ms = statistics.median(applies)
    result.single_read_ms = statistics.median(reads)
    result.phases_ms = prespawn_phases()
    return result


def _median_ms(call: Callable[[], Any], times: int = 15) -> float:
    call()
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def _cached_list(kind: str, selector: str) -> Any:
    """What kube.provision.list_kind asks, answered from the apiserver's watch cache instead of etcd."""
    from kubernetes import client as k8s

    from kube.client import api_client

    api = k8s.NetworkingV1Api(api_client()) if kind == "Ingress" else k8s.CoreV1Api(api_client())
    method = {
        "ConfigMap": "list_config_map_for_all_namespaces",
        "Secret": "list_secret_for_all_namespaces",
        "Service": "list_service_for_all_namespaces",
        "Ingress": "list_ingress_for_all_namespaces",
    }[kind]
    return getattr(api, method)(label_selector=selector, resource_version="0", _preload_content=False).data


def prespawn_phases() -> dict[str, float]:
    """Where one /prespawn's time goes, step by step, as spawning.provisioning.provision runs them."""
    from kube import concurrent as kube_concurrent
    from kube import provision as kube_provision
    from spawning import labels, provisioning, services

    def validate() -> Any:
        body = prespawn_body(7, f"p{secrets.token_hex(3)}")
        return services.prespawn_validate(
            username=body["username"],
            server_name=body["server_name"],
            pod_name=body["pod_name"],
            default_namespace=body["default_namespace"],
            profile=body["profile"],
            user_options={key: value[0] for key, value in body["user_options"].items()},
            groups=body["groups"],
        )

    plan = validate()
    refs = provisioning.gaffer_source_refs(plan)
    selector = labels.owner_selector(plan.username, plan.server_name)
    sources = {source.ref: source for source in kube_provision.read_config_sources(refs)}
    manifests = provisioning.plan_objects(plan, gaffer_sources=sources)
    return {
        "validate (SQL)": _median_ms(validate),
        "3 reads + 4 cluster-wide lists, concurrently": _median_ms(
            lambda: kube_concurrent.run_settled(
                [lambda r=ref: kube_provision.read_config_source(r) for ref in refs]
                + [lambda k=kind: kube_provision.list_kind(k, selector) for kind in kube_provision.KINDS]
            )
        ),
        "4 cluster-wide lists alone, concurrently": _median_ms(
            lambda: kube_concurrent.run_settled(
                [lambda k=kind: kube_provision.list_kind(k, selector) for kind in kube_provision.KINDS]
            )
        ),
        "the same 4 lists from the watch cache (resourceVersion=0)": _median_ms(
            lambda: kube_concurrent.run_settled(
                [lambda k=kind: _cached_list(k, selector) for kind in kube_provision.KINDS]
            )
        ),
        "7 applies, concurrently": _median_ms(
            lambda: kube_concurrent.run_settled([lambda m=m: kube_provision.apply_object(m) for m in manifests])
        ),
        "7 applies, one after another": _median_ms(lambda: [kube_provision.apply_object(m) for m in manifests]),
        "provision() end to end": _median_ms(lambda: provisioning.provision(validate())),
    }


def profile_prespawn(args: argparse.Namespace, count: int) -> None:
    """cProfile of ``count`` in-process /prespawn re-spawns (the same users and servers again)."""
    import cProfile
    import pstats

    django_setup(args)
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"token {TOKEN}")
    users = min(count, 20)
    for index in range(users):
        client.post("/prespawn", prespawn_body(index, "profile"), content_type="application/json")
    profiler = cProfile.Profile()
    started = time.monotonic()
    profiler.enable()
    for index in range(count):
        client.post("/prespawn", prespawn_body(index % users, "profile"), content_type="application/json")
    profiler.disable()
    print(f"\n{count} /prespawn re-spawns in-process: {(time.monotonic() - started) * 1000 / count:.2f} ms each")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def profile_options(args: argparse.Namespace, count: int) -> None:
    """cProfile of ``count`` /options requests in this process: where a request's time goes."""
    import cProfile
    import pstats

    django_setup(args)
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"token {TOKEN}")
    client.post("/options", options_body(1), content_type="application/json")
    profiler = cProfile.Profile()
    started = time.monotonic()
    profiler.enable()
    for index in range(count):
        client.post("/options", options_body(index), content_type="application/json")
    profiler.disable()
    print(f"\n{count} /options in-process: {(time.monotonic() - started) * 1000 / count:.2f} ms each")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


# --- 5. The portal under gunicorn, driven by wrk ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(args: argparse.Namespace) -> Iterator[tuple[int, str]]:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="portal-bench-gunicorn-", suffix=".log")[1])
    env = portal_env(args, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "optionsportal.wsgi:application", "--config", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                sys.exit(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:  # noqa: S310 - our own local URL
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"gunicorn did not answer /healthz:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process.pid, url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        errors = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line or "error" in line]
        if errors:
            print(f"gunicorn log ({log}) has {len(errors)} error lines, e.g. {errors[0][:300]}")


WRK_SCRIPT = """
local counter = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  run_id = args[1]
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "token %(token)s"

local function user(n)
  return string.format("u%%03d", n %% %(users)d)
end

function request()
  if "%(endpoint)s" == "healthz" then
    return wrk.format("GET", "/healthz")
  end
  counter = counter + 1
  local u = user(counter * 7 + thread_id)
  if %(cycle)d > 0 then
    u = string.format("u%%03d", (counter * 7 + thread_id) %% %(cycle)d)
  end
  local ns = "user-" .. u
  local body
  if "%(endpoint)s" == "options" then
    body = '{"username":"' .. u .. '","server_name":"","pod_name":"jupyter-' .. u ..
      '","default_namespace":"' .. ns .. '","groups":["data-science","team-03"]}'
  else
    local server = run_id .. "-" .. thread_id .. "-" .. counter
    if %(cycle)d > 0 then
      server = "cycle"
    end
    body = '{"username":"' .. u .. '","server_name":"' .. server .. '","pod_name":"jupyter-' .. u .. '-' .. server ..
      '","default_namespace":"' .. ns .. '","groups":["data-science"],"profile":"%(profile)s","user_options":{' ..
      '"profile":["%(profile)s"],"resource_preset":["medium"],"resources_cpu":["1"],"resources_mem":["2048"],' ..
      '"k8s_namespace":["' .. ns .. '"],"volume":[""],"volume_name":["' .. server .. '"],"resources_hdd":["10"],' ..
      '"k8s_service_account":["' .. ns .. ':notebook-0"],"hdfs":["%(hdfs)s"],"gaffer_graph":["%(graph)s"],' ..
      '"spark_cpu":["1"],"spark_mem":["1024"]}}'
  end
  return wrk.format(nil, "/%(endpoint)s", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout, latency.mean))
end
"""


@dataclass
class LoadResult:
    """One wrk run: one endpoint at one concurrency."""

    endpoint: str
    concurrency: int
    requests: int
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int
    load_average: list[float] = field(default_factory=list)
    # /prespawn only: 0 when every request is a new server, else how many (user, server) pairs it cycles.
    cycle: int = 0
    apiserver: dict[str, Any] = field(default_factory=dict)


def _spawn_records() -> int:
    from django.db.models import Max

    from spawning.models import SpawnRecord

    return int(SpawnRecord.objects.aggregate(last=Max("id"))["last"] or 0)


def _settled_spawn_records() -> int:
    """The last spawn record's id once no more are being written (the workers have caught up)."""
    last = _spawn_records()
    while True:
        time.sleep(1)
        now = _spawn_records()
        if now == last:
            return now
        last = now


def prime_cycle(url: str, cycle: int) -> None:
    """Spawn each cycled server once, so the cycled runs measure re-spawns from their first request."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda index: _timed_post(url, "/prespawn", prespawn_body(index, "cycle")), range(cycle)))


def run_wrk(
    url: str,
    endpoint: str,
    concurrency: int,
    duration: int,
    warmup: int = 2,
    *,
    cycle: int = 0,
    meter: ApiserverMeter | None = None,
) -> LoadResult:
    """One wrk run; with ``meter``, what the apiserver did for it, per request the portal handled.

    For /prespawn that count is the spawn records written, once the workers have finished the
    requests still in flight when wrk stopped (their apiserver calls are in the counters too),
    rather than wrk's count of replies received, which leaves those out.
    """
    script = Path(tempfile.mkstemp(prefix=f"bench-{endpoint}-", suffix=".lua")[1])
    script.write_text(
        WRK_SCRIPT
        % {
            "token": TOKEN,
            "users": USERS,
            "endpoint": endpoint,
            "profile": PROFILE,
            "hdfs": HDFS_CHOICE,
            "graph": GRAPH_CHOICE,
            "cycle": cycle if endpoint == "prespawn" else 0,
        }
    )
    run_id = f"w{secrets.token_hex(3)}"
    if warmup:
        # Connections, template and query caches warm; the figures are of the steady state.
        subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{warmup}s", "-s", str(script), url, "--", f"{run_id}w"],
            capture_output=True,
            check=False,
        )
    spawns_before = _spawn_records() if meter and endpoint == "prespawn" else 0
    before = meter.read() if meter else None
    # One wrk thread: it is event-driven, and the server needs the two cores more.
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        run_id,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    handled = 0
    if meter and endpoint == "prespawn":
        handled = _settled_spawn_records() - spawns_before
    after = meter.read() if meter else None
    script.unlink()
    match = re.search(r"^RESULT (.*)$", done.stdout, re.M)
    if done.returncode != 0 or match is None:
        sys.exit(f"wrk failed:\n{done.stdout}{done.stderr}")
    requests, micros, p50, p95, p99, worst, non_2xx, socket_errors, mean = (float(v) for v in match.group(1).split())
    seconds = micros / 1e6
    cost = asdict(apiserver_cost(before, after, handled or int(requests))) if before and after else {}
    return LoadResult(
        endpoint=endpoint,
        concurrency=concurrency,
        requests=int(requests),
        seconds=round(seconds, 2),
        throughput=round(requests / seconds, 1),
        p50_ms=round(p50 / 1000, 1),
        p95_ms=round(p95 / 1000, 1),
        p99_ms=round(p99 / 1000, 1),
        max_ms=round(worst / 1000, 1),
        mean_ms=round(mean / 1000, 1),
        non_2xx=int(non_2xx),
        socket_errors=int(socket_errors),
        load_average=list(os.getloadavg()),
        cycle=cycle if endpoint == "prespawn" else 0,
        apiserver=cost,
    )


def _timed_post(url: str, path: str, body: dict[str, Any]) -> float:
    request = urllib.request.Request(  # noqa: S310 - our own local URL
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"token {TOKEN}"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310
        reply.read()
        if reply.status != 200:
            sys.exit(f"{path} answered {reply.status} on a cold start")
    return round((time.perf_counter() - started) * 1000, 1)


COLD_REQUESTS = 4


def measure_cold_start(args: argparse.Namespace, url: str, endpoints: list[str]) -> dict[str, list[float]]:
    """The first requests of each endpoint straight after gunicorn started, one at a time, in ms.

    Then an operator-style edit of a NamespaceOption through the ORM (as the admin saves it),
    and the first /options after it. Each worker builds its snapshot on first use, so the
    first requests show what a restart or an inventory change costs the hub.
    """
    figures: dict[str, list[float]] = {}
    if "options" in endpoints:
        figures["options"] = [_timed_post(url, "/options", options_body(i)) for i in range(COLD_REQUESTS)]
    if "prespawn" in endpoints:
        server = f"cold{secrets.token_hex(2)}"
        figures["prespawn"] = [_timed_post(url, "/prespawn", prespawn_body(i, server)) for i in range(COLD_REQUESTS)]
        figures["prespawn (the same again)"] = [
            _timed_post(url, "/prespawn", prespawn_body(i, server)) for i in range(COLD_REQUESTS)
        ]
    if "options" in endpoints:
        django_setup(args)
        from inventory.models import NamespaceOption

        option = NamespaceOption.objects.get(pattern="team-00")
        option.description = f"Team 0 ({secrets.token_hex(2)})"
        option.save()
        figures["options after an inventory change"] = [
            _timed_post(url, "/options", options_body(i)) for i in range(COLD_REQUESTS)
        ]
    for name, times in figures.items():
        print(f"cold start: first {len(times)} /{name}: " + ", ".join(f"{t:.1f}" for t in times) + " ms")
    return figures


def worker_memory(master: int) -> list[dict[str, int]]:
    """VmRSS and VmHWM (peak) in MiB of each gunicorn worker (the master's children)."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) != master:
            continue
        status = (stat.parent / "status").read_text()
        values = {k: int(v.split()[0]) // 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", status, re.M)}
        workers.append({"pid": int(stat.parent.name), "rss_mib": values["VmRSS"], "peak_mib": values["VmHWM"]})
    return sorted(workers, key=lambda w: w["pid"])


# --- Report ----------------------------------------------------------------------------------------


def print_table(results: list[LoadResult]) -> None:
    print(
        f"\n{'endpoint':<10}{'conc':>5}{'cycle':>6}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'non-2xx':>9}{'k8s/req':>9}{'k8s CPU ms':>11}{'etcd ms':>9}  load"
    )
    for r in results:
        load = " ".join(f"{v:.1f}" for v in r.load_average)
        cost = r.apiserver or {}
        print(
            f"{'/' + r.endpoint:<10}{r.concurrency:>5}{r.cycle or '-':>6}{r.throughput:>9.1f}{r.p50_ms:>9.1f}"
            f"{r.p95_ms:>9.1f}{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{r.non_2xx + r.socket_errors:>9}"
            f"{cost.get('total_per_request', 0):>9.2f}{cost.get('apiserver_cpu_ms_per_request', 0):>11.2f}"
            f"{cost.get('etcd_cpu_ms_per_request', 0):>9.2f}  {load}"
        )
        if cost.get("requests_per_request"):
            calls = ", ".join(f"{key} {value:g}" for key, value in cost["requests_per_request"].items())
            print(f"{'':<15}apiserver calls per request: {calls}")


def plot(results: list[LoadResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    # /prespawn's latency is drawn for its last cycle setting (re-spawns, when measured).
    cycle = max((r.cycle for r in results if r.endpoint == "prespawn"), default=0)
    for ax, endpoint in zip(axes[:2], ("options", "prespawn"), strict=True):
        runs = [r for r in results if r.endpoint == endpoint and (endpoint != "prespawn" or r.cycle == cycle)]
        levels = [r.concurrency for r in runs]
        for key, label, style in (("p50_ms", "p50", "o-"), ("p95_ms", "p95", "s-"), ("p99_ms", "p99", "^-")):
            ax.plot(levels, [getattr(r, key) for r in runs], style, label=label)
        if endpoint == "options":
            ax.axhline(25, color="grey", linestyle="--", linewidth=1, label="p99 target at 8")
            for floor in (r for r in results if r.endpoint == "healthz"):
                ax.plot([floor.concurrency], [floor.p99_ms], "kx", label="GET /healthz p99 (floor)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("latency (ms)")
        ax.set_title(
            f"POST /{endpoint} latency" + (f", {cycle} users cycled" if endpoint == "prespawn" and cycle else "")
        )
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax = axes[2]
    series = sorted({(r.endpoint, r.cycle) for r in results if r.endpoint in ("options", "prespawn")})
    for endpoint, cycled in series:
        runs = [r for r in results if r.endpoint == endpoint and r.cycle == cycled]
        label = f"/{endpoint}" + (
            f" ({cycled} users cycled)" if cycled else " (new servers)" if endpoint == "prespawn" else ""
        )
        ax.plot(
            [r.concurrency for r in runs],
            [r.throughput for r in runs],
            "o-" if endpoint == "options" else "s-",
            label=label,
        )
    levels = sorted({r.concurrency for r in results})
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("requests per second")
    ax.set_title("Throughput")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kube-dir", required=True, help="state folder of scripts/test-kube.sh start")
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of the bench's own")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--endpoints", default="options,prespawn")
    parser.add_argument("--skip-fill", action="store_true", help="the cluster and database are ready already")
    parser.add_argument("--fill-only", action="store_true", help="fill the cluster and database, then stop")
    parser.add_argument(
        "--baseline", action="store_true", help="also GET /healthz at 8 clients: the floor on this machine"
    )
    parser.add_argument("--profile", type=int, default=0, help="also cProfile this many /options in-process")
    parser.add_argument(
        "--profile-prespawn", type=int, default=0, help="also cProfile this many /prespawn re-spawns in-process"
    )
    parser.add_argument(
        "--prespawn-cycle",
        default="0",
        help=f"comma-separated: 0 makes every /prespawn a new server; N (at most {USERS}) cycles N users, one server "
        "each, so most calls re-spawn an unchanged server",
    )
    parser.add_argument("--no-cold-start", action="store_true", help="skip the first-requests-after-restart figures")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--plot", type=Path, help="write the latency/throughput plot (PNG) here")
    parser.add_argument(
        "--plot-with",
        type=Path,
        help="an earlier run's --json: its runs of endpoints not measured now complete the plot",
    )
    parser.add_argument(
        "--compute",
        default="",
        help="NODES,PODS: first put that many nodes and running pods, and four machine types, into the "
        "database as the sync writes them (bench/compute_bench.py); 0,0 takes them out again",
    )
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    inventory = Inventory()
    sync_summary = ""
    if not args.skip_fill:
        inventory = fill_cluster(f"{args.kube_dir}/kubeconfig")
        sync_summary = prepare_database(args)
    if args.compute:
        fill_compute(args)
    if args.fill_only:
        return
    in_process = measure_in_process(args)
    print(f"SQL queries: /options {in_process.options_queries}, /prespawn {in_process.prespawn_queries}")
    if in_process.prespawn_queries:
        print(
            f"/prespawn: {in_process.prespawn_reads} reads + {in_process.prespawn_lists} lists, then "
            f"{in_process.prespawn_objects} applies; single apply {in_process.single_apply_ms:.1f} ms, "
            f"single read {in_process.single_read_ms:.1f} ms; one /prespawn in-process "
            f"{in_process.prespawn_inprocess_ms:.1f} ms"
        )
    for phase, took in in_process.phases_ms.items():
        print(f"  /prespawn step: {phase}: {took:.1f} ms")
    for label, cost in (("new server", in_process.prespawn_apiserver), ("re-spawn", in_process.respawn_apiserver)):
        if cost:
            print(f"one in-process /prespawn, {label}: {describe_cost(ApiserverCost(**cost))}")
    if in_process.respawn_inprocess_ms:
        print(f"one in-process /prespawn re-spawn: {in_process.respawn_inprocess_ms:.1f} ms")
    if args.profile:
        profile_options(args, args.profile)
    if args.profile_prespawn:
        profile_prespawn(args, args.profile_prespawn)

    endpoints = args.endpoints.split(",")
    cycles = [int(c) for c in args.prespawn_cycle.split(",")]
    if any(c > USERS for c in cycles):
        sys.exit(f"--prespawn-cycle: at most {USERS} users exist")
    cold_start: dict[str, list[float]] = {}
    if not args.no_cold_start:
        with gunicorn(args) as (_, url):
            cold_start = measure_cold_start(args, url, endpoints)

    meter = ApiserverMeter(args.kube_dir)
    results: list[LoadResult] = []
    with gunicorn(args) as (master, url):
        if args.baseline:
            # What the server, Django's middleware and wrk cost on this machine with no work at all.
            baseline = run_wrk(url, "healthz", 8, args.duration)
            results.append(baseline)
            print_table([baseline])
        for endpoint in endpoints:
            for cycle in cycles if endpoint == "prespawn" else [0]:
                if cycle:
                    prime_cycle(url, cycle)
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    result = run_wrk(url, endpoint, concurrency, args.duration, cycle=cycle, meter=meter)
                    results.append(result)
                    print_table([result])
        memory = worker_memory(master)
    print_table(results)
    sequential_ms = (
        in_process.prespawn_reads + in_process.prespawn_lists + in_process.prespawn_objects
    ) * in_process.single_apply_ms
    one_at_a_time = next((r for r in results if r.endpoint == "prespawn" and r.concurrency == 1), None)
    if one_at_a_time:
        print(
            f"/prespawn p50 at 1 client: {one_at_a_time.p50_ms:.1f} ms; the same "
            f"{in_process.prespawn_reads + in_process.prespawn_lists + in_process.prespawn_objects} apiserver calls "
            f"one after another would take about {sequential_ms:.1f} ms "
            f"({in_process.single_apply_ms:.1f} ms each)"
        )
    print(
        "worker memory (MiB): " + ", ".join(f"pid {w['pid']}: {w['rss_mib']} now, {w['peak_mib']} peak" for w in memory)
    )
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "started": started,
                    "inventory": asdict(inventory),
                    "sync": sync_summary,
                    "in_process": asdict(in_process),
                    "sequential_estimate_ms": round(sequential_ms, 1),
                    "cold_start_ms": cold_start,
                    "load": [asdict(r) for r in results],
                    "workers": memory,
                },
                indent=2,
            )
        )
        print(f"figures: {args.json}")
    if args.plot:
        title = f"Options Portal hub API, 2 gunicorn workers, 2 cores ({started})"
        plotted = results
        if args.plot_with:
            earlier = json.loads(args.plot_with.read_text())
            measured = {r.endpoint for r in results}
            borrowed = [LoadResult(**r) for r in earlier["load"] if r["endpoint"] not in measured]
            plotted = results + borrowed
            if borrowed:
                names = ", ".join(sorted({f"/{r.endpoint}" for r in borrowed}))
                title += f"; {names} from the run of {earlier['started']}"
        plot(plotted, args.plot, title)


if __name__ == "__main__":
    main()
