"""Live capacity at scale: the capacity query over a large inventory, and the sync under pod churn.

    scripts/test-kube.sh start /tmp/kube-bench
    psql postgres://postgres@127.0.0.1:5432/postgres -c "CREATE DATABASE op_compute_bench"
    DEBUG=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/op_compute_bench \\
      .venv/bin/python bench/compute_bench.py --kubeconfig /tmp/kube-bench/kubeconfig

1. ``compute_snapshot`` (every machine type and namespace) with --nodes nodes and
   --pods running pods stored in the inventory (pod rows and per-node sums, written
   as a full sync round writes them), against an empty inventory; and the GROUP BY
   over the pod rows that the per-node sums replaced.
2. A SyncLoop watching the test apiserver while pods are created and deleted at
   --rate changes per second: the lag from each API call returning to the
   database showing it.

The bench empties the compute tables of the database it is pointed at, so give it a database of its own.
"""

from __future__ import annotations

import argparse
import os
import secrets
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
from django.db import connection, transaction  # noqa: E402
from django.db.models import Sum  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from inventory.capacity import compute_snapshot  # noqa: E402
from inventory.models import ClusterNode, MachineType, NodeUsage, PodRequest  # noqa: E402
from inventory.sync import TARGETS, Outcome, reconcile  # noqa: E402
from inventory.sync_loop import SyncLoop  # noqa: E402
from kube.client import reset_api_client  # noqa: E402

GI = 2**30 * 1000
GPU = "nvidia.com/gpu"


def fill_inventory(nodes: int, pods: int) -> None:
    PodRequest.objects.all().delete()
    NodeUsage.objects.all().delete()
    ClusterNode.objects.all().delete()
    MachineType.objects.all().delete()
    pools = ["cpu", "highmem", "gpu", "gpu-large"]
    ClusterNode.objects.bulk_create(
        [
            ClusterNode(
                name=f"node-{index}",
                labels={"pool": pools[index % 4]},
                taints=[{"key": GPU, "value": "present", "effect": "NoSchedule"}] if index % 4 >= 2 else [],
                allocatable={
                    "cpu": 32000,
                    "memory": 128 * GI,
                    "pods": 110_000,
                    **({GPU: 8000} if index % 4 >= 2 else {}),
                },
                ready=True,
            )
            for index in range(nodes)
        ],
        batch_size=1000,
    )
    desired: dict[str, dict] = {}
    for index in range(pods):
        node = index % nodes
        requests = {"pods": 1000, "cpu": 500, "memory": GI}
        if node % 4 >= 2 and index % 3 == 0:
            requests[GPU] = 1000
        desired[f"ns-{index % 50}:pod-{index}"] = {"node_name": f"node-{node}", "requests": requests}
    # Written as a full sync round writes them: the pod rows and the per-node sums.
    pods_target = next(target for target in TARGETS if target.name == "pods")
    with transaction.atomic():
        reconcile(target=pods_target, desired=desired, keys=None, now=timezone.now(), outcome=Outcome())
    toleration = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    for pool in pools:
        gpu = pool.startswith("gpu")
        MachineType.objects.create(
            slug=pool,
            display_name=pool,
            node_selector={"pool": pool},
            tolerations=toleration if gpu else [],
            extended_resources={GPU: [0, 1, 2, 4]} if gpu else {},
        )


def time_snapshot(runs: int) -> tuple[float, int]:
    compute_snapshot()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            compute_snapshot()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000, len(queries.captured_queries)


def time_group_by(runs: int) -> float:
    """The GROUP BY over every pod row that compute_snapshot ran before the per-node sums, for comparison."""
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        list(PodRequest.objects.values_list("node_name", "resource").annotate(total=Sum("amount")).order_by())
        timings.append(time.perf_counter() - started)
    return statistics.median(timings[1:]) * 1000


def sums_equal_recount(prefix: str = "") -> bool:
    """Whether the per-node sums the sync kept equal the pod rows counted afresh."""
    counted: dict[str, dict[str, int]] = {}
    for node_name, resource, total in (
        PodRequest.objects.filter(node_name__startswith=prefix)
        .values_list("node_name", "resource")
        .annotate(total=Sum("amount"))
        .order_by()
    ):
        if total:
            counted.setdefault(node_name, {})[resource] = int(total)
    kept = dict(NodeUsage.objects.filter(node_name__startswith=prefix).values_list("node_name", "used"))
    return kept == counted


def core_api(kubeconfig: str) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))


def churn(core: k8s.CoreV1Api, *, rate: float, seconds: float, threads: int) -> dict[str, float]:
    namespace = f"compute-bench-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    node = f"bench-node-{secrets.token_hex(3)}"
    core.create_node({"metadata": {"name": node}})
    loop = SyncLoop(interval=3600, watch_timeout=30, report=lambda line: None)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    while "Pod" not in loop.watchers:
        time.sleep(0.1)

    def body(name: str) -> dict:
        return {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "automountServiceAccountToken": False,
                "containers": [{"name": "c", "image": "example.org/x:1", "resources": {"requests": {"cpu": "100m"}}}],
            },
        }

    while True:  # the namespace's default service account comes a moment later
        try:
            core.create_namespaced_pod(namespace, body("warm-up"))
            break
        except ApiException:
            time.sleep(0.2)

    done_at: dict[tuple[str, str], float] = {}
    seen_at: dict[tuple[str, str], float] = {}
    stop = threading.Event()

    def poll() -> None:
        present_before: set[str] = set()
        while not stop.is_set() or len(seen_at) < len(done_at):
            rows = set(
                PodRequest.objects.filter(pod__startswith=f"{namespace}:", resource="pods").values_list(
                    "pod", flat=True
                )
            )
            now = time.perf_counter()
            for pod in rows - present_before:
                seen_at.setdefault(("add", pod), now)
            for pod in present_before - rows:
                seen_at.setdefault(("delete", pod), now)
            present_before = rows
            if stop.is_set() and time.perf_counter() - deadline > 30:
                break
            time.sleep(0.02)
        connection.close()

    def create(index: int) -> None:
        name = f"pod-{index}"
        core.create_namespaced_pod(namespace, body(name))
        done_at[("add", f"{namespace}:{name}")] = time.perf_counter()

    def delete(index: int) -> None:
        name = f"pod-{index}"
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _preload_content=False)
        done_at[("delete", f"{namespace}:{name}")] = time.perf_counter()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    interval = 1.0 / rate
    started = time.perf_counter()
    total = int(rate * seconds)
    created = deleted = 0
    late = 0
    with ThreadPoolExecutor(threads) as pool:
        futures = []
        for change in range(total):
            due = started + change * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.05:
                late += 1
            # Alternate creates and deletes, keeping about ten pods alive.
            if change % 2 == 0 or deleted >= created - 10:
                futures.append(pool.submit(create, created))
                created += 1
            else:
                futures.append(pool.submit(delete, deleted))
                deleted += 1
        for future in futures:
            future.result()
    sent_for = time.perf_counter() - started
    deadline = time.perf_counter()
    stop.set()
    poller.join(timeout=40)
    in_cluster = {f"{namespace}:{pod.metadata.name}" for pod in core.list_namespaced_pod(namespace).items}
    in_database = set(
        PodRequest.objects.filter(pod__startswith=f"{namespace}:", resource="pods").values_list("pod", flat=True)
    )
    sums_match = sums_equal_recount(node)
    loop.stop.set()
    thread.join(timeout=10)
    lags = [seen_at[key] - done_at[key] for key in done_at if key in seen_at]
    # A pod created and deleted within one applied batch never shows in the database: that is the net state.
    missed = len(done_at) - len(lags)
    core.delete_namespace(namespace, _preload_content=False)
    core.delete_node(node, _preload_content=False)
    lags.sort()
    return {
        "changes": len(done_at),
        "achieved_rate": len(done_at) / sent_for,
        "late_sends": late,
        "missed": missed,
        "lag_median_ms": statistics.median(lags) * 1000,
        "lag_p95_ms": lags[int(len(lags) * 0.95) - 1] * 1000,
        "lag_max_ms": lags[-1] * 1000,
        "final_state_matches": float(in_cluster == in_database),
        "sums_match": float(sums_match),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), required=not os.environ.get("KUBECONFIG"))
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="pod changes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}; load average {os.getloadavg()}")

    fill_inventory(0, 0)
    empty_ms, empty_queries = time_snapshot(args.runs)
    fill_inventory(args.nodes, args.pods)
    full_ms, full_queries = time_snapshot(args.runs)
    group_by_ms = time_group_by(args.runs)
    print(f"compute_snapshot, empty inventory: {empty_ms:.1f} ms median, {empty_queries} queries")
    print(
        f"compute_snapshot, {args.nodes} nodes, {args.pods} pods ({PodRequest.objects.count()} request rows, "
        f"{NodeUsage.objects.count()} node sums), 4 machine types: {full_ms:.1f} ms median, {full_queries} queries"
    )
    print(
        f"the GROUP BY over the pod rows it replaced: {group_by_ms:.1f} ms median; sums equal a recount: "
        f"{sums_equal_recount()}"
    )
    fill_inventory(0, 0)

    settings.KUBECONFIG = args.kubeconfig
    reset_api_client()
    result = churn(core_api(args.kubeconfig), rate=args.rate, seconds=args.seconds, threads=args.threads)
    print(
        f"pod churn: {result['changes']:.0f} changes at {result['achieved_rate']:.1f}/s ({result['late_sends']:.0f} sent late), "
        f"database lag median {result['lag_median_ms']:.0f} ms, p95 {result['lag_p95_ms']:.0f} ms, "
        f"max {result['lag_max_ms']:.0f} ms, {result['missed']:.0f} never seen (whole life within one batch); "
        f"final database state equals the cluster's: {bool(result['final_state_matches'])}; "
        f"node sums equal a recount: {bool(result['sums_match'])}"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
