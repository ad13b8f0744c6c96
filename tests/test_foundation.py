"""The foundation: settings from the environment, health endpoints, the database in use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from optionsportal.env import envbool, envint, envlist, envsecret


def test_secret_is_read_from_a_mounted_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("SOME_TOKEN", "from-env")
    monkeypatch.setenv("SOME_TOKEN_FILE", str(secret))
    assert envsecret("SOME_TOKEN") == "s3cret"


def test_secret_file_that_cannot_be_read_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(ImproperlyConfigured, match="SOME_TOKEN_FILE"):
        envsecret("SOME_TOKEN")


def test_env_readers_parse_and_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "yes")
    monkeypatch.setenv("COUNT", "12")
    monkeypatch.setenv("HOSTS", "a.example, b.example ,")
    assert envbool("FLAG") is True
    assert envint("COUNT", 1) == 12
    assert envlist("HOSTS") == ["a.example", "b.example"]
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        envbool("FLAG")


@pytest.mark.django_db
def test_tests_run_on_the_database_named_by_database_url() -> None:
    """CI runs the suite on PostgreSQL and again on SQLite: never quietly on the built-in default."""
    if os.environ.get("OPTIONSPORTAL_REQUIRE_SERVICES") != "true":
        assert connection.vendor in {"postgresql", "sqlite"}
        return
    url = os.environ.get("DATABASE_URL", "")
    assert url, "DATABASE_URL must name the test database when services are required"
    expected = "sqlite" if url.startswith("sqlite:") else "postgresql"
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if expected == "sqlite" else "SELECT version()")
        assert cursor.fetchone()[0]


def test_healthz_answers(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_admin_login_page_answers(client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"Options Portal" in response.content
