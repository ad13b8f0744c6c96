"""The deployment files parse and reference only what the code really has."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def _documents() -> list[dict[str, Any]]:
    docs = []
    for name in _kustomization()["resources"]:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d)
    return docs


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for doc in _documents():
        if doc["kind"] in {"Deployment", "Job"}:
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
    return specs


def _containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, spec in _pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            found.append((f"{name}/{container['name']}", container))
    return found


def _code_env_names() -> set[str]:
    """Every environment variable the code reads by name."""
    names: set[str] = set()
    pattern = re.compile(r"""(?:env\w*|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
    for path in [*ROOT.glob("optionsportal/*.py"), ROOT / "gunicorn.conf.py"]:
        names.update(pattern.findall(path.read_text()))
    return names


def test_every_resource_listed_exists_and_parses() -> None:
    kinds = {doc["kind"] for doc in _documents()}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"} <= kinds


def test_images_are_the_one_the_kustomization_sets() -> None:
    image_names = {entry["name"] for entry in _kustomization()["images"]}
    for name, container in _containers():
        assert container["image"] in image_names, name


def test_commands_are_real_entry_points() -> None:
    commands = get_commands()
    for name, container in _containers():
        command = container["command"]
        if command[:2] == ["python", "manage.py"]:
            assert command[2] in commands, f"{name}: no management command {command[2]!r}"
        else:
            assert command[0] == "gunicorn", name
            module, _, attr = command[1].partition(":")
            assert (ROOT / (module.replace(".", "/") + ".py")).exists() and attr == "application"
            assert (ROOT / command[command.index("--config") + 1]).exists()


def test_probes_hit_real_urls_on_real_ports() -> None:
    web = dict(_containers())["options-portal-web/web"]
    port_names = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert port_names == {"http": 8000}
    gunicorn_conf = (ROOT / "gunicorn.conf.py").read_text()
    assert '"0.0.0.0:8000"' in gunicorn_conf, "the image's default bind must match containerPort"
    for probe in ("readinessProbe", "livenessProbe"):
        get = web[probe]["httpGet"]
        assert get["port"] in port_names
        try:
            resolve(get["path"])
        except Resolver404:
            pytest.fail(f"{probe} path {get['path']} is not a URL of the portal")
    sync = dict(_containers())["options-portal-sync/sync"]
    assert sync["readinessProbe"]["exec"]["command"][2] in get_commands()


def test_env_vars_are_ones_the_code_reads() -> None:
    known = _code_env_names()
    configmap = next(d for d in _documents() if d["kind"] == "ConfigMap")
    for key in configmap["data"]:
        assert key in known, f"ConfigMap key {key} is read by no code"
    secret = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    for name, container in _containers():
        for env in container.get("env", []):
            var = env["name"]
            base = var.removesuffix("_FILE")
            assert base in known, f"{name}: {var} is read by no code"
            if var.endswith("_FILE"):
                key = Path(env["value"]).name
                assert key in secret["stringData"], f"{name}: {var} points at a key the Secret lacks"
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert str(Path(env["value"]).parent) in mounts, f"{name}: {var} is not mounted"


def test_service_targets_the_web_pods() -> None:
    service = next(d for d in _documents() if d["kind"] == "Service")
    web = next(d for d in _documents() if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("web"))
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert web["spec"]["replicas"] >= 2
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_pods_run_as_the_portal_service_account_and_not_as_root() -> None:
    for name, spec in _pod_specs():
        assert spec["serviceAccountName"] == "options-portal", name
        assert spec["securityContext"]["runAsNonRoot"] is True, name


def test_the_kustomize_base_ships_no_secret_values() -> None:
    assert not [doc for doc in _documents() if doc["kind"] == "Secret"]
    # Every container that reads the Secret still names one the operator makes.
    for _name, spec in _pod_specs():
        assert {"name": "secrets", "secret": {"secretName": "options-portal"}} in spec["volumes"]


def _start_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith(("SECRET_KEY", "OPTIONS_PORTAL"))}
    base.update(DEBUG="false", ALLOWED_HOSTS="portal.example.org", **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_outside_debug_the_example_secret_values_are_refused_by_name() -> None:
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())["stringData"]
    real_key, real_token = "k" * 20 + "-0b9c7e1d5a", "t" * 20 + "-6f2e8a4c1b"

    placeholder_key = _start_settings({"SECRET_KEY": example["secret-key"], "OPTIONS_PORTAL_HUB_TOKEN": real_token})
    assert placeholder_key.returncode != 0
    assert "SECRET_KEY is a placeholder" in placeholder_key.stderr

    placeholder_token = _start_settings({"SECRET_KEY": real_key, "OPTIONS_PORTAL_HUB_TOKEN": example["hub-token"]})
    assert placeholder_token.returncode != 0
    assert "OPTIONS_PORTAL_HUB_TOKEN is a placeholder" in placeholder_token.stderr

    no_token = _start_settings({"SECRET_KEY": real_key})
    assert no_token.returncode != 0
    assert "OPTIONS_PORTAL_HUB_TOKEN (or OPTIONS_PORTAL_HUB_TOKEN_FILE) must be set" in no_token.stderr

    no_key = _start_settings({"OPTIONS_PORTAL_HUB_TOKEN": real_token})
    assert no_key.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in no_key.stderr

    started = _start_settings({"SECRET_KEY": real_key, "OPTIONS_PORTAL_HUB_TOKEN": real_token})
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "started"


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    # Docker's rule: the last matching pattern wins; a pattern also covers what is below it.
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        ):
            ignored = not negate
    return ignored


def test_secrets_and_local_state_never_enter_the_image() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (
        "secrets/secret_key",
        "secrets/hub_token",
        "kubeconfig",
        ".venv/bin/python",
        ".hubtest/node_modules/x.js",
        ".quickstart/hub_token",
        ".test-kube/pki/ca.key",
        "artifacts/shot.png",
        "db.sqlite3",
        "hub/optionsportal_hub.egg-info/PKG-INFO",
        ".git/config",
    ):
        assert _docker_ignored(path, patterns), path
    for path in (
        "manage.py",
        "spawning/views.py",
        "templates/admin/index.html",
        "requirements.txt",
        "hub/pyproject.toml",
    ):
        assert not _docker_ignored(path, patterns), path
    # The image build needs no secret: collectstatic runs on throwaway values.
    assert "COPY --chown=portal:portal . ." in (ROOT / "Dockerfile").read_text()


def test_compose_gives_the_sync_its_own_health_check() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    sync = compose["services"]["sync"]
    test = sync["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "manage.py"]
    assert test[3] == "sync_health" and test[3] in get_commands()
    assert "8000" not in " ".join(test)
    assert "createsuperuser" in (ROOT / "docker-compose.yml").read_text()
