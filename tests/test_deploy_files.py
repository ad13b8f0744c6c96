"""The deployment files parse and reference only what the code really has."""

from __future__ import annotations

import re
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
