"""Fixtures that give tests real services: PostgreSQL and a real kube-apiserver.

Nothing here skips. A test that needs a service which is not there fails,
with the reason, so a broken CI machine can never pass quietly.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kube.client import reset_api_client

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On SQLite, leave out the tests marked ``postgresql`` (advisory locks, killed backends, …).

    Deselected, not skipped: the PostgreSQL run is where they pass or fail, and a
    skip would read as a pass.
    """
    if connections["default"].vendor == "postgresql":
        return
    kept = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def _form_from_the_current_snapshot(settings: Any) -> None:
    """Tests read the form right after changing the inventory, in their own transaction.

    A background rebuild (settings.OPTIONS_PREVIOUS_WHILE_REBUILDING) would read on a
    connection of its own, outside that transaction; tests/test_options_cache.py tests it
    with committed data.
    """
    settings.OPTIONS_PREVIOUS_WHILE_REBUILDING = False


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """On SQLite, a test database in a file rather than in memory.

    As deployed: threads (the sync loop, the provisioning pool) and the tests that
    make the database unreachable each open connections of their own, which an
    in-memory database shares only through SQLite's table locks.
    """
    settings = connections["default"].settings_dict
    if settings["ENGINE"] == "django.db.backends.sqlite3":
        settings.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@dataclass(frozen=True)
class KubeTestCluster:
    kubeconfig: str
    server: str
    token: str
    ca_file: str

    def api_client(self, token: str | None = None) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        if token is None:
            k8s_config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        else:
            configuration.host = self.server
            configuration.ssl_ca_cert = self.ca_file
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return k8s.ApiClient(configuration)


def _read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeTestCluster]:
    """A real kube-apiserver + etcd + controller-manager for the whole test session.

    Reuses a running one when OPTIONSPORTAL_TEST_KUBE_DIR names its state folder
    (handy while developing); otherwise starts one and stops it at the end.
    """
    existing = os.environ.get("OPTIONSPORTAL_TEST_KUBE_DIR")
    if existing:
        yield _cluster_from(Path(existing))
        return
    state = Path(tempfile.mkdtemp(prefix="optionsportal-kube-"))
    script = ROOT / "scripts" / "test-kube.sh"
    started = subprocess.run([str(script), "start", str(state)], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(
            "The test kube-apiserver could not be started (run scripts/test-kube.sh install):\n"
            + started.stdout
            + started.stderr,
            pytrace=False,
        )
    try:
        yield _cluster_from(state)
    finally:
        subprocess.run([str(script), "stop", str(state)], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


def _cluster_from(state: Path) -> KubeTestCluster:
    env_file = state / "env"
    if not env_file.exists():
        pytest.fail(f"No test cluster state in {state}", pytrace=False)
    env = _read_env(env_file)
    return KubeTestCluster(
        kubeconfig=env["KUBECONFIG"],
        server=env["KUBE_TEST_SERVER"],
        token=env["KUBE_TEST_TOKEN"],
        ca_file=env["KUBE_TEST_CA"],
    )


@pytest.fixture
def kube(kube_cluster: KubeTestCluster, settings) -> Iterator[KubeTestCluster]:
    """Point the portal at the test cluster for one test."""
    settings.KUBECONFIG = kube_cluster.kubeconfig
    reset_api_client()
    yield kube_cluster
    reset_api_client()


@pytest.fixture
def core_v1(kube_cluster: KubeTestCluster) -> Iterator[k8s.CoreV1Api]:
    """The test's own admin view of the cluster, independent of the portal's code."""
    api = kube_cluster.api_client()
    yield k8s.CoreV1Api(api)
    api.close()


def _make_namespace(core: k8s.CoreV1Api) -> str:
    name = f"t-{secrets.token_hex(4)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"optionsportal.test/fresh": "true"}}})
    return name


@pytest.fixture
def namespace(core_v1: k8s.CoreV1Api) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = _make_namespace(core_v1)
    yield name
    core_v1.delete_namespace(name, _preload_content=False)


@pytest.fixture
def make_namespace(core_v1: k8s.CoreV1Api) -> Iterator:
    """Make as many fresh namespaces as a test needs."""
    made: list[str] = []

    def make() -> str:
        made.append(_make_namespace(core_v1))
        return made[-1]

    yield make
    for name in made:
        core_v1.delete_namespace(name, _preload_content=False)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path
