"""Time sync_cluster against a test apiserver holding N labelled objects.

    scripts/test-kube.sh start /tmp/kube-bench
    psql postgres://postgres@127.0.0.1:5432/postgres -c "CREATE DATABASE op_bench"
    DEBUG=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/op_bench \\
      .venv/bin/python bench/sync_bench.py --kubeconfig /tmp/kube-bench/kubeconfig --count 1000
    ... --count 10000

Objects are created concurrently and kept: a later run (or a larger N) only
adds what is missing. The bench empties the inventory tables of the database
it is pointed at, so give it a database of its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "optionsportal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from inventory.models import (  # noqa: E402
    GafferGraph,
    HdfsInstance,
    Namespace,
    NotebookVolume,
    ServiceAccount,
    SyncRound,
)
from inventory.sync import sync_full_round  # noqa: E402
from inventory.sync_loop import SyncLoop  # noqa: E402
from kube.client import reset_api_client  # noqa: E402

BENCH_LABEL = "optionsportal.bench/object"
NAMESPACE_PREFIX = "sync-bench-"
# Out of every 10 objects: 3 service accounts, 3 PVCs, 1 HDFS namenode
# Service, 1 Gaffer API Service, 1 graph-config ConfigMap, 1 store Secret.
CREATE = {
    "sa": "service_account",
    "pvc": "persistent_volume_claim",
    "service": "service",
    "config_map": "config_map",
    "secret": "secret",
}
MIX = ("sa", "pvc", "sa", "pvc", "hdfs", "gaffer-api", "sa", "pvc", "graph-config", "store-secret")


def core_api(kubeconfig: str) -> k8s.CoreV1Api:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return k8s.CoreV1Api(k8s.ApiClient(configuration))


def body(index: int) -> tuple[str, dict]:
    kind = MIX[index % len(MIX)]
    name = f"b{index}"
    bench = {BENCH_LABEL: "true"}
    if kind == "sa":
        return kind, {
            "metadata": {
                "name": name,
                "labels": {**bench, "hub.jupyter.org/notebook-service-account": ""},
                "annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/r{index}"},
            }
        }
    if kind == "pvc":
        return kind, {
            "metadata": {
                "name": name,
                "labels": {
                    **bench,
                    "app.kubernetes.io/name": "jupyterhub",
                    "app.kubernetes.io/component": "notebook-volume",
                    "hub.jupyter.org/username": f"user{index}",
                },
            },
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    instance = {"app.kubernetes.io/instance": name}
    if kind == "hdfs":
        return "service", {
            "metadata": {
                "name": name,
                "labels": {
                    **bench,
                    **instance,
                    "app.kubernetes.io/name": "hdfs",
                    "app.kubernetes.io/component": "namenode",
                },
            },
            "spec": {"ports": [{"name": "client-rpc", "port": 8020}]},
        }
    if kind == "gaffer-api":
        return "service", {
            "metadata": {
                "name": name,
                "labels": {
                    **bench,
                    **instance,
                    "app.kubernetes.io/name": "gaffer",
                    "app.kubernetes.io/component": "api",
                },
            },
            "spec": {"ports": [{"name": "http", "port": 8080}]},
        }
    # The graph's ConfigMap and Secret join the Gaffer API Service five objects earlier.
    graph = {"app.kubernetes.io/instance": f"b{index - 3 if kind == 'graph-config' else index - 4}"}
    if kind == "graph-config":
        return "config_map", {
            "metadata": {
                "name": name,
                "labels": {
                    **bench,
                    **graph,
                    "app.kubernetes.io/name": "gaffer",
                    "app.kubernetes.io/component": "graph-config",
                },
            },
            "data": {"graphConfig.json": f'{{"graphId": "b{index}", "description": "Bench graph {index}"}}'},
        }
    return "secret", {
        "metadata": {
            "name": name,
            "labels": {
                **bench,
                **graph,
                "app.kubernetes.io/name": "gaffer",
                "app.kubernetes.io/component": "store-properties",
            },
        },
        "stringData": {"store.properties": "password=bench"},
    }


def ensure_objects(core: k8s.CoreV1Api, count: int, namespaces: int, threads: int) -> int:
    """Create whatever of b0..b<count-1> is missing; returns how many were created."""
    for index in range(namespaces):
        try:
            core.create_namespace({"metadata": {"name": f"{NAMESPACE_PREFIX}{index:02d}"}})
        except ApiException as exc:
            if exc.status != 409:
                raise
    existing: set[tuple[str, str]] = set()
    selector = f"{BENCH_LABEL}=true"
    for lister in (
        core.list_service_account_for_all_namespaces,
        core.list_persistent_volume_claim_for_all_namespaces,
        core.list_service_for_all_namespaces,
        core.list_config_map_for_all_namespaces,
        core.list_secret_for_all_namespaces,
    ):
        token = None
        while True:
            page = lister(label_selector=selector, limit=2000, _continue=token)
            existing.update((item.metadata.namespace, item.metadata.name) for item in page.items)
            token = page.metadata._continue
            if not token:
                break

    def create(index: int) -> int:
        namespace = f"{NAMESPACE_PREFIX}{index % namespaces:02d}"
        if (namespace, f"b{index}") in existing:
            return 0
        kind, manifest = body(index)
        create_fn = getattr(core, f"create_namespaced_{CREATE[kind]}")
        try:
            create_fn(namespace, manifest, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
            return 0
        return 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(create, range(count)))


def clear_inventory() -> None:
    for model in (GafferGraph, HdfsInstance, ServiceAccount, NotebookVolume, Namespace, SyncRound):
        model.objects.all().delete()


def writes(queries: list[dict[str, str]]) -> int:
    return sum(
        1
        for q in queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and "inventory_syncround" not in q["sql"]
    )


def change_latency(core: k8s.CoreV1Api, count: int, namespaces: int, samples: int) -> list[float]:
    """Seconds from patching an annotation to the database showing it, through the watch."""
    loop = SyncLoop(interval=3600, watch_timeout=60, report=lambda line: None)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not loop.watchers and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        sa_indexes = [i for i in range(count) if MIX[i % len(MIX)] == "sa"]
        latencies = []
        for sample in range(samples):
            index = sa_indexes[(sample * 7919) % len(sa_indexes)]
            namespace = f"{NAMESPACE_PREFIX}{index % namespaces:02d}"
            role = f"arn:aws:iam::123456789012:role/changed-{time.time_ns()}"
            started = time.monotonic()
            core.patch_namespaced_service_account(
                f"b{index}", namespace, {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": role}}}
            )
            key = f"{namespace}:b{index}"
            while not ServiceAccount.objects.filter(key=key, observed_role_arn=role).exists():
                if time.monotonic() - started > 30:
                    raise SystemExit(f"change to {key} not seen in 30 s")
                time.sleep(0.01)
            latencies.append(time.monotonic() - started)
            time.sleep(0.2)
        return latencies
    finally:
        loop.stop.set()
        thread.join(timeout=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), required=not os.environ.get("KUBECONFIG"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--samples", type=int, default=10, help="watch latency samples")
    args = parser.parse_args()

    settings.KUBECONFIG = args.kubeconfig
    reset_api_client()
    call_command("migrate", verbosity=0)
    core = core_api(args.kubeconfig)

    started = time.monotonic()
    created = ensure_objects(core, args.count, args.namespaces, args.threads)
    print(f"objects: {args.count} wanted, {created} created in {time.monotonic() - started:.1f} s")

    clear_inventory()
    started = time.monotonic()
    first, outcome = sync_full_round()
    took = time.monotonic() - started
    print(
        f"full round (empty inventory): {took:.2f} s, {first.objects_seen} objects seen, "
        f"{outcome.rows_written} rows written ({first.status})"
    )
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        idle, outcome = sync_full_round()
        took = time.monotonic() - started
    print(
        f"idle round: {took:.2f} s, {idle.objects_seen} objects seen, {outcome.rows_written} rows written, "
        f"{writes(queries.captured_queries)} INSERT/UPDATE/DELETE statements on inventory tables"
    )
    latencies = change_latency(core, args.count, args.namespaces, args.samples)
    print(
        f"change → database through the watch: median {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s over {len(latencies)} changes"
    )


if __name__ == "__main__":
    main()
