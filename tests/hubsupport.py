"""Real processes for the hub end-to-end tests: the portal under gunicorn and JupyterHub with our spawner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHP = ROOT / ".hubtest" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until ``check()`` returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - polling a service that is still starting
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")


@dataclass
class Process:
    """A service this test started, in its own process group so its children stop with it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


def start_process(name: str, args: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("wb")
    popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    log_file.close()
    return Process(name=name, popen=popen, log_path=log_path)


def database_url(settings_dict: dict[str, Any]) -> str:
    """The URL of the database the test process uses, so the portal process sees the same rows."""
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def start_portal(*, db_url: str, kubeconfig: str, env_extra: dict[str, str], log_dir: Path) -> tuple[Process, str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "KUBECONFIG": kubeconfig,
        "DEBUG": "true",
        "SECRET_KEY": "hub-e2e-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "DATABASE_CONN_MAX_AGE": "0",
        **env_extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = start_process(
        "portal",
        [str(VENV_BIN / "gunicorn"), "optionsportal.wsgi:application", "--config", "gunicorn.conf.py"],
        env=env,
        cwd=ROOT,
        log_dir=log_dir,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        process.check_alive()
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200

    try:
        wait_for(healthy, timeout=60, what="the portal's /healthz")
    except AssertionError:
        process.stop()
        raise
    return process, url


HUB_CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.pid_file = "{state}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.load_groups = {{"analysts": {{"users": ["alice"]}}}}
c.JupyterHub.services = [{{"name": "e2e", "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "e2e-admin", "scopes": ["admin:users", "admin:servers", "list:users"], "services": ["e2e"]}}
]
# A refusal must come back on the form, not via the pending page, even on a
# busy CI machine; a spawn that succeeds waits this long (its pod stays Pending).
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 10}}

c.JupyterHub.spawner_class = {spawner_class!r}
c.OptionsPortalSpawner.options_portal_url = {portal_url!r}
c.OptionsPortalSpawner.options_portal_token = {portal_token!r}
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.start_timeout = 60
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.volumes = [{{"name": "home", "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
"""


@dataclass
class Hub:
    """A running JupyterHub and what a test needs to talk to it."""

    process: Process
    url: str
    api_token: str
    password: str

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.api_token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)


def start_hub(
    *,
    state: Path,
    kubeconfig: str,
    spawner_class: str,
    portal_url: str,
    portal_token: str,
    namespace: str,
    log_dir: Path,
) -> Hub:
    if not CHP.exists():
        raise AssertionError(f"configurable-http-proxy is not installed at {CHP}; scripts/test.sh installs it with npm")
    port = free_port()
    hub = Hub(
        process=None,  # type: ignore[arg-type]
        url=f"http://127.0.0.1:{port}",
        api_token="e2e-admin-" + os.urandom(8).hex(),
        password="e2e-" + os.urandom(6).hex(),
    )
    config = state / "jupyterhub_config.py"
    config.write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            state=state,
            password=hub.password,
            api_token=hub.api_token,
            spawner_class=spawner_class,
            portal_url=portal_url,
            portal_token=portal_token,
            namespace=namespace,
        )
    )
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    for name in ("OPTIONS_PORTAL_URL", "OPTIONS_PORTAL_HUB_TOKEN", "KUBERNETES_SERVICE_HOST"):
        env.pop(name, None)
    hub.process = start_process(
        "jupyterhub", [str(VENV_BIN / "jupyterhub"), "-f", str(config)], env=env, cwd=state, log_dir=log_dir
    )

    def up() -> bool:
        hub.process.check_alive()
        return requests.get(f"{hub.url}/hub/api/", timeout=2).status_code == 200

    try:
        wait_for(up, timeout=45, what="JupyterHub to answer")
    except AssertionError:
        hub.process.stop()
        raise
    return hub


def login(hub: Hub, username: str) -> requests.Session:
    """Log in through the hub's login form, as a browser would."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=10)
    page.raise_for_status()
    xsrf = session.cookies.get("_xsrf") or ""
    reply = session.post(
        f"{hub.url}/hub/login",
        data={"username": username, "password": hub.password, "_xsrf": xsrf},
        timeout=10,
        allow_redirects=False,
    )
    assert reply.status_code == 302, f"login failed: {reply.status_code} {reply.text[:500]}"
    return session
