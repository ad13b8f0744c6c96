"""Connection to the Kubernetes API and the errors callers may see."""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3HTTPError


class KubeError(Exception):
    """The cluster could not do what was asked."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeUnavailable(KubeError):
    """The apiserver could not be reached or is not configured (retry later)."""


class KubeNotFound(KubeError):
    """The object does not exist."""


class KubeForbidden(KubeError):
    """Our service account may not do this (RBAC)."""


class KubeGone(KubeError):
    """A watch's resourceVersion is too old (HTTP 410): list again."""


@dataclass(frozen=True)
class ClusterInfo:
    host: str
    version: str


_lock = threading.Lock()


@functools.cache
def _api_client_for(kubeconfig: str | None) -> client.ApiClient:
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, TypeError) as exc:
        where = f"KUBECONFIG={kubeconfig}" if kubeconfig else "in-cluster service account"
        raise KubeUnavailable(f"Kubernetes is not configured ({where}): {exc}") from exc
    # A pool per worker thread count keeps parallel /prespawn applies from
    # queueing on one connection.
    configuration.connection_pool_maxsize = 16
    configuration.retries = False
    return client.ApiClient(configuration)


def cluster_configured() -> bool:
    """Whether there is a cluster to talk to: a kubeconfig, or the in-cluster service account's environment."""
    return bool(settings.KUBECONFIG) or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def api_client() -> client.ApiClient:
    with _lock:
        return _api_client_for(settings.KUBECONFIG)


def reset_api_client() -> None:
    """Forget cached connections (tests switch clusters and credentials)."""
    with _lock:
        _api_client_for.cache_clear()


def translate(exc: BaseException, what: str) -> KubeError:
    """Turn a client exception into one of ours, with a message for humans."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        reason = exc.reason or ""
        detail = _status_message(exc) or reason
        message = f"{what}: {detail} (HTTP {status})"
        if status == 404:
            return KubeNotFound(message, status=status, reason=reason)
        if status == 403:
            return KubeForbidden(message, status=status, reason=reason)
        if status == 410:
            return KubeGone(message, status=status, reason=reason)
        if status == 0 or status >= 500 or status == 429:
            return KubeUnavailable(message, status=status, reason=reason)
        return KubeError(message, status=status, reason=reason)
    if isinstance(exc, Urllib3HTTPError | OSError | TimeoutError):
        return KubeUnavailable(f"{what}: the Kubernetes API cannot be reached ({exc})")
    return KubeError(f"{what}: {exc}")


def _status_message(exc: ApiException) -> str:
    try:
        body: Any = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or "")
    return ""


def request_timeout() -> float:
    return float(settings.KUBE_REQUEST_TIMEOUT)


def cluster_info() -> ClusterInfo:
    """The server's address and version; raises KubeUnavailable when unreachable."""
    api = api_client()
    try:
        info = client.VersionApi(api).get_code(_request_timeout=request_timeout())
    except Exception as exc:
        raise translate(exc, "reading the server version") from exc
    return ClusterInfo(host=api.configuration.host, version=str(info.git_version))
