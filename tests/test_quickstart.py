"""README command (1): scripts/quickstart.sh brings the portal up on SQLite with demo data and a login."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_quickstart_serves_health_readiness_and_an_admin_login(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'quickstart.sqlite3'}")
    log = (tmp_path / "quickstart.log").open("w+")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "quickstart.sh")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.5)

        output = Path(log.name).read_text()
        login = re.search(r"login:\s+admin / (\S+)", output)
        assert login, output
        assert requests.get(f"{base}/readyz", timeout=30).json() == {"status": "ok", "database": "ok"}

        session = requests.Session()
        form = session.get(f"{base}/admin/login/", timeout=30)
        assert form.status_code == 200
        csrf = session.cookies["csrftoken"]
        landed = session.post(
            f"{base}/admin/login/?next=/admin/inventory/profile/",
            data={"username": "admin", "password": login.group(1), "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{base}/admin/login/"},
            timeout=30,
        )
        assert landed.status_code == 200
        assert landed.url.endswith("/admin/inventory/profile/"), landed.url
        # The demo data is there for the operator to look at.
        assert "Gaffer + PySpark" in landed.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
