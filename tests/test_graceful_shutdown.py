"""SIGTERM to the web server lets a /prespawn that is under way finish before the process exits."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import psycopg2
import pytest
import requests
from django.db import connection

from spawning.locks import SERVER_LOCK_CLASS, server_lock_key
from tests.hubapi import TOKEN, make_hdfs, make_preset, make_profile, offer_namespace, our_objects, prespawn_body
from tests.hubsupport import database_url, start_portal

pytestmark = [pytest.mark.kube, pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def test_sigterm_finishes_the_spawn_in_flight(kube, core_v1, namespace: str, tmp_path: Path) -> None:
    offer_namespace(namespace)
    make_preset(default=True)
    make_profile("hdfs", enable_hdfs=True)
    make_hdfs(namespace, "lake")
    body = prespawn_body(profile="hdfs", namespace=namespace, server_name="lab", hdfs=f"{namespace}:lake")
    db_url = database_url(connection.settings_dict)
    portal, base = start_portal(
        db_url=db_url,
        kubeconfig=kube.kubeconfig,
        env_extra={"OPTIONS_PORTAL_HUB_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"},
        log_dir=tmp_path,
    )
    # Hold this server's spawn lock from outside, so the request is certainly
    # in flight (waiting for it) when the SIGTERM arrives.
    holder = psycopg2.connect(db_url)
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [SERVER_LOCK_CLASS, server_lock_key("alice", "lab")])
        result: dict[str, requests.Response] = {}

        def spawn() -> None:
            result["response"] = requests.post(
                f"{base}/prespawn", json=body, headers={"Authorization": f"token {TOKEN}"}, timeout=60
            )

        client = threading.Thread(target=spawn)
        client.start()
        deadline = time.monotonic() + 20
        waiting = False
        while not waiting and time.monotonic() < deadline:
            with holder.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s",
                    [SERVER_LOCK_CLASS],
                )
                waiting = cursor.fetchone()[0] > 0
            time.sleep(0.05)
        assert waiting, "the request reached the spawn lock"

        portal.popen.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert portal.popen.poll() is None, "gunicorn waits for the request in flight"
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SERVER_LOCK_CLASS, server_lock_key("alice", "lab")])

        client.join(timeout=30)
        assert result["response"].status_code == 200, result["response"].text
        assert our_objects(core_v1, namespace) == ["ConfigMap/jhub-hadoop-config-alice-lab"]
        assert portal.popen.wait(timeout=30) == 0, portal.log()[-3000:]
    finally:
        holder.close()
        portal.stop()
