"""Small readers of settings from the environment (12-factor)."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from exc


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from exc


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envsecret(name: str, default: str | None = None) -> str | None:
    """Read ``NAME``, or the file named by ``NAME_FILE`` (a mounted Kubernetes Secret)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    value = os.environ.get(name)
    if value is None:
        return default
    return value


# Values copied from an example rather than generated: deploy/secret.example.yaml's
# "change-me-…", and the development key settings falls back to with DEBUG on.
_PLACEHOLDER_MARKS = ("change-me", "changeme", "replace-me", "insecure-development-key")


def require_real_secret(name: str, value: str | None) -> None:
    """Refuse an empty or placeholder secret, naming it (the error stops the process at start)."""
    if not value or not value.strip():
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) must be set when DEBUG is off")
    lowered = value.lower()
    if any(mark in lowered for mark in _PLACEHOLDER_MARKS):
        raise ImproperlyConfigured(
            f"{name} is a placeholder copied from an example; set a long random value (openssl rand -hex 32)"
        )
