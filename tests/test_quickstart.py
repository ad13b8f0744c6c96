"""README command (1): scripts/quickstart.sh, run as a newcomer would, in a fresh clone, up to a spawn.

The clone installs its own .venv from the pinned requirements (pip's cache
keeps that to about a minute on a machine that has installed them once); the
--cluster run uses the machine's apiserver build in /opt/optionsportal-kube.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from kubernetes import client as k8s
from kubernetes import config as k8s_config

ROOT = Path(__file__).resolve().parent.parent
# Variables of the test run that a newcomer's shell would not have.
_NOT_A_NEWCOMERS = {
    "DATABASE_URL",
    "DEBUG",
    "SECRET_KEY",
    "DJANGO_SETTINGS_MODULE",
    "KUBECONFIG",
    "OPTIONS_PORTAL_HUB_TOKEN",
    "OPTIONSPORTAL_TEST_KUBE_DIR",
    "VIRTUAL_ENV",
}
OUR_OBJECTS = "app.kubernetes.io/name=jhub-notebook-config"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fresh_clone(tmp_path: Path) -> Path:
    """The committed tree, as `git clone` gives it: nothing of this checkout's .venv or state."""
    clone = tmp_path / "options-portal"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    # The working tree's changes too, so a run before committing tests what is there.
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, capture_output=True, check=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=clone, input=diff, check=True)
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, untracked):
        target = clone / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name.decode()).read_bytes())
        target.chmod((ROOT / name.decode()).stat().st_mode)
    return clone


@contextmanager
def _quickstart(clone: Path, tmp_path: Path, *args: str, env: dict[str, str], wait: float) -> Iterator[tuple[str, str]]:
    """Run the quick start until it serves; yields (base URL, its output so far)."""
    port = _free_port()
    run_env = {key: value for key, value in os.environ.items() if key not in _NOT_A_NEWCOMERS}
    run_env.update(PORT=str(port), **env)
    log_path = tmp_path / "quickstart.log"
    log = log_path.open("w+")
    process = subprocess.Popen(
        [str(clone / "scripts" / "quickstart.sh"), *args],
        cwd=clone,
        env=run_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        yield base, log_path.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _printed(output: str, pattern: str) -> str:
    found = re.search(pattern, output)
    assert found, output
    return found.group(1)


def _hub(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def _spawn_body(**extra: object) -> dict[str, object]:
    return {
        "username": "alice",
        "server_name": "",
        "groups": ["data-science"],
        "pod_name": "jupyter-alice",
        "default_namespace": "user-alice",
        "profile": "gaffer-pyspark",
        "user_options": {
            "profile": ["gaffer-pyspark"],
            "k8s_namespace": ["user-alice"],
            "hdfs": ["default:demo-hdfs"],
            "gaffer_graph": ["default:demo-graph"],
            "k8s_service_account": [""],
            "volume": ["user-alice:claim-alice"],
        },
        **extra,
    }


def _admin_login(base: str, password: str) -> requests.Session:
    session = requests.Session()
    assert session.get(f"{base}/admin/login/", timeout=30).status_code == 200
    landed = session.post(
        f"{base}/admin/login/?next=/admin/inventory/profile/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/admin/login/"},
        timeout=30,
    )
    assert landed.status_code == 200
    assert landed.url.endswith("/admin/inventory/profile/"), landed.url
    assert "Gaffer + PySpark" in landed.text
    return session


def test_a_newcomers_quickstart_serves_and_completes_a_dry_run_spawn(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path)
    with _quickstart(clone, tmp_path, env={}, wait=420) as (base, output):
        password = _printed(output, r"login:\s+admin / (\S+)")
        token = _printed(output, r"hub token:\s+(\S+)")
        assert (clone / "db.sqlite3").exists()
        assert requests.get(f"{base}/readyz", timeout=30).json() == {"status": "ok", "database": "ok"}
        _admin_login(base, password)

        options = requests.post(
            f"{base}/options",
            json={
                "username": "alice",
                "server_name": "",
                "groups": ["data-science"],
                "default_namespace": "user-alice",
            },
            headers=_hub(token),
            timeout=30,
        )
        assert options.status_code == 200, options.text
        form = options.json()
        assert "user-alice" in {n["name"] for n in form["namespaces"]}
        assert "gaffer-pyspark" in {p["slug"] for p in form["profiles"]}
        assert 'name="hdfs"' in form["html"]

        spawn = requests.post(f"{base}/prespawn", json=_spawn_body(dry_run=True), headers=_hub(token), timeout=30)
        assert spawn.status_code == 200, spawn.text
        answer = spawn.json()
        assert answer["dry_run"] == "local"
        assert answer["namespace"] == "user-alice"
        assert answer["pvc_name"] == "claim-alice"
        assert {o["metadata"]["name"] for o in answer["objects"]} >= {
            "jhub-hadoop-config-alice",
            "jhub-gaffer-store-alice",
            "jhub-spark-config-alice",
        }

        # Without dry_run there is no cluster to spawn into: a clear, retryable JSON error.
        real = requests.post(f"{base}/prespawn", json=_spawn_body(), headers=_hub(token), timeout=30)
        assert real.status_code == 503
        assert real.json()["error"] == "cluster_unavailable"


@pytest.mark.kube
def test_the_cluster_quickstart_discovers_the_demo_spawns_for_real_and_cleans_up(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path)
    kube_dir = tmp_path / "kube"
    env = {"QUICKSTART_KUBE_DIR": str(kube_dir)}
    # The newcomer's default database: the clone's own SQLite file.
    with _quickstart(clone, tmp_path, "--cluster", env=env, wait=600) as (base, output):
        token = _printed(output, r"hub token:\s+(\S+)")
        assert "with a real apiserver" in output
        api = k8s_config.new_client_from_config(config_file=str(kube_dir / "kubeconfig"))
        core = k8s.CoreV1Api(api)

        # Discovered by the sync from real objects, not stand-ins.
        options = requests.post(
            f"{base}/options",
            json={"username": "alice", "server_name": "", "groups": ["data-science"]},
            headers=_hub(token),
            timeout=30,
        )
        assert options.status_code == 200, options.text
        form = options.json()
        assert {g["id"] for g in form["gaffer_graphs"]} == {"default:demo-graph"}
        assert {h["id"] for h in form["hdfs"]} == {"default:demo-hdfs", "analytics:secure-hdfs"}
        assert {v["id"] for v in form["volumes"]} == {"user-alice:claim-alice"}
        assert "Demo data" not in options.text

        dry = requests.post(f"{base}/prespawn", json=_spawn_body(dry_run=True), headers=_hub(token), timeout=30)
        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] == "server"
        assert core.list_namespaced_config_map("user-alice", label_selector=OUR_OBJECTS).items == []

        spawn = requests.post(f"{base}/prespawn", json=_spawn_body(), headers=_hub(token), timeout=30)
        assert spawn.status_code == 200, spawn.text
        made = {
            cm.metadata.name for cm in core.list_namespaced_config_map("user-alice", label_selector=OUR_OBJECTS).items
        }
        assert made == {
            "jhub-hadoop-config-alice",
            "jhub-gaffer-graph-config-alice",
            "jhub-gaffer-schema-alice",
            "jhub-spark-config-alice",
        }
        store = core.read_namespaced_secret("jhub-gaffer-store-alice", "user-alice")
        assert set(store.data) == {"store.properties"}

        stop = requests.post(
            f"{base}/poststop", json={"username": "alice", "server_name": ""}, headers=_hub(token), timeout=30
        )
        assert stop.status_code == 200, stop.text
        assert len(stop.json()["deleted"]) >= 6
        assert core.list_namespaced_config_map("user-alice", label_selector=OUR_OBJECTS).items == []
        assert core.list_namespaced_secret("user-alice", label_selector=OUR_OBJECTS).items == []
        assert core.list_namespaced_service("user-alice", label_selector=OUR_OBJECTS).items == []
        api.close()
    # Ctrl-C (here SIGTERM) stops the cluster the quick start started.
    for name in ("etcd.pid", "apiserver.pid", "controller-manager.pid"):
        assert not (kube_dir / name).exists(), name
