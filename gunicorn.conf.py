"""gunicorn settings for the portal's web process (override any with GUNICORN_CMD_ARGS)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Sync workers: on bench/portal_bench.py (2026-12-02, docs/benchmarks.md) four gthread
# threads per worker gave /options 412 req/s at 8 clients with p99 300 ms and /prespawn
# 37 req/s at 32 clients, against 794 req/s, p99 25 ms and 42 req/s with sync workers.
# GUNICORN_WORKER_CLASS=gthread WEB_THREADS=N for a deployment that measures otherwise.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("WEB_THREADS", "1"))
# A hub waits on /prespawn; give in-flight requests time to finish on SIGTERM.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "25"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
accesslog = None  # the request middleware logs each request as a JSON line
errorlog = "-"
# The pod's root filesystem is read-only and nothing here uses gunicorn's control interface.
control_socket_disable = True
# Heartbeat files in memory: the root filesystem is read-only and /tmp may be slow disk.
worker_tmp_dir = os.environ.get(
    "GUNICORN_WORKER_TMP_DIR",
    "/dev/shm" if os.path.isdir("/dev/shm") else None,  # noqa: S108 - a tmpfs, not a shared temp path
)

# Request counters live in each worker; prometheus_client's multiprocess mode
# adds them up across workers for /metrics.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="optionsportal-metrics-")


def post_worker_init(worker: Any) -> None:
    """Build the inventory snapshot and draw one form before the worker takes its first request."""
    from django.db import connection

    from spawning.selectors import warm_up

    warm_up()
    # Requests open their own (with gthread, one per thread); close what the warm-up opened.
    connection.close()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
