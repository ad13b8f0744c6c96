"""Listing and watching what the inventory discovers, as plain frozen dataclasses.

Lists and watches are read as raw JSON (``_preload_content=False``): turning
10,000 objects into the client's strict models costs more than the list
itself, and we keep only a few fields of each. Secrets are read as
``PartialObjectMetadata``, so their contents never even reach this process.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from kube.client import KubeError, KubeGone, api_client, request_timeout, translate

HDFS_SELECTOR = "app.kubernetes.io/name=hdfs,app.kubernetes.io/component=namenode"
GAFFER_API_SELECTOR = "app.kubernetes.io/name=gaffer,app.kubernetes.io/component=api"
# One Service list/watch serves both HDFS and Gaffer; the set-based selector also
# matches the cross pairs (hdfs+api, gaffer+namenode), which ``is_hdfs_namenode``
# and ``is_gaffer_api`` leave out.
SERVICE_SELECTOR = "app.kubernetes.io/name in (hdfs,gaffer),app.kubernetes.io/component in (namenode,api)"
GAFFER_CONFIG_SELECTOR = "app.kubernetes.io/name=gaffer,app.kubernetes.io/component in (graph-config,schema)"
GAFFER_SECRET_SELECTOR = "app.kubernetes.io/name=gaffer,app.kubernetes.io/component=store-properties"  # noqa: S105 - a label selector
SERVICE_ACCOUNT_SELECTOR = "hub.jupyter.org/notebook-service-account"
VOLUME_SELECTOR = "app.kubernetes.io/name=jupyterhub,app.kubernetes.io/component=notebook-volume"

_METADATA_ONLY_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

DEFAULT_PAGE_SIZE = 500


class Kind(enum.StrEnum):
    """An object kind the inventory lists and watches."""

    SERVICE = "Service"
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"  # noqa: S105 - a kind name
    SERVICE_ACCOUNT = "ServiceAccount"
    PVC = "PersistentVolumeClaim"
    NAMESPACE = "Namespace"


_LIST_METHODS: dict[Kind, str] = {
    Kind.SERVICE: "list_service_for_all_namespaces",
    Kind.CONFIG_MAP: "list_config_map_for_all_namespaces",
    Kind.SECRET: "list_secret_for_all_namespaces",
    Kind.SERVICE_ACCOUNT: "list_service_account_for_all_namespaces",
    Kind.PVC: "list_persistent_volume_claim_for_all_namespaces",
    Kind.NAMESPACE: "list_namespace",
}

SELECTORS: dict[Kind, str | None] = {
    Kind.SERVICE: SERVICE_SELECTOR,
    Kind.CONFIG_MAP: GAFFER_CONFIG_SELECTOR,
    Kind.SECRET: GAFFER_SECRET_SELECTOR,
    Kind.SERVICE_ACCOUNT: SERVICE_ACCOUNT_SELECTOR,
    Kind.PVC: VOLUME_SELECTOR,
    Kind.NAMESPACE: None,
}


@dataclass(frozen=True)
class KubeObject:
    """What the inventory keeps of one object; ``data`` is empty for Secrets by design."""

    kind: Kind
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Service: port name → port number.
    ports: Mapping[str, int] = field(default_factory=dict)
    # ConfigMap: file name → contents.
    data: Mapping[str, str] = field(default_factory=dict)
    # PVC: capacity from status (else the request) and phase; Namespace: phase.
    capacity: str = ""
    phase: str = ""

    @property
    def ref(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def is_hdfs_namenode(self) -> bool:
        return _matches(self.labels, "hdfs", "namenode")

    def is_gaffer_api(self) -> bool:
        return _matches(self.labels, "gaffer", "api")


@dataclass(frozen=True)
class Listing:
    """Every matching object of one kind, and the resourceVersion to watch from."""

    kind: Kind
    objects: tuple[KubeObject, ...]
    resource_version: str


class EventType(enum.StrEnum):
    """A watch event's type (ERROR events become exceptions instead)."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by a watch; for BOOKMARK only ``resource_version`` matters."""

    type: EventType
    object: KubeObject

    @property
    def resource_version(self) -> str:
        return self.object.resource_version


def _matches(labels: Mapping[str, str], name: str, component: str) -> bool:
    return labels.get("app.kubernetes.io/name") == name and labels.get("app.kubernetes.io/component") == component


# The client loads its (very large) API modules lazily; pay that at import, not
# inside the first timed round.
_CoreV1Api = client.CoreV1Api


def _core() -> client.CoreV1Api:
    return _CoreV1Api(api_client())


def _list_call(kind: Kind) -> Callable[..., Any]:
    return getattr(_core(), _LIST_METHODS[kind])


def _headers(kind: Kind, *, watch: bool) -> dict[str, str] | None:
    if kind is Kind.SECRET:
        return {"Accept": _METADATA_ONLY if watch else _METADATA_ONLY_LIST}
    return None


def object_from_json(kind: Kind, raw: Mapping[str, Any]) -> KubeObject:
    """Keep only what the inventory needs; never a Secret's data."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    ports: dict[str, int] = {}
    data: dict[str, str] = {}
    capacity = phase = ""
    if kind is Kind.SERVICE:
        for port in spec.get("ports") or []:
            if port.get("name"):
                ports[str(port["name"])] = int(port.get("port") or 0)
    elif kind is Kind.CONFIG_MAP:
        data = {str(k): str(v) for k, v in (raw.get("data") or {}).items()}
    elif kind is Kind.PVC:
        capacity = str(
            (status.get("capacity") or {}).get("storage")
            or ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            or ""
        )
        phase = str(status.get("phase") or "")
    elif kind is Kind.NAMESPACE:
        phase = str(status.get("phase") or "")
    return KubeObject(
        kind=kind,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=dict(meta.get("labels") or {}),
        annotations=_annotations(meta),
        ports=ports,
        data=data,
        capacity=capacity,
        phase=phase,
    )


def _annotations(meta: Mapping[str, Any]) -> dict[str, str]:
    # kubectl's last-applied copy repeats the whole object; for a Secret made
    # with kubectl apply it would even hold the credentials.
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return annotations


def list_objects(kind: Kind, *, page_size: int = DEFAULT_PAGE_SIZE) -> Listing:
    """All objects of ``kind`` matching its selector, across namespaces, page by page."""
    call = _list_call(kind)
    selector = SELECTORS[kind]
    objects: list[KubeObject] = []
    token: str | None = None
    resource_version = ""
    while True:
        try:
            response = call(
                label_selector=selector,
                limit=page_size,
                _continue=token,
                _preload_content=False,
                _request_timeout=request_timeout(),
                _headers=_headers(kind, watch=False),
            )
            body = json.loads(response.data)
        except Exception as exc:
            raise translate(exc, f"listing {kind}s") from exc
        objects.extend(object_from_json(kind, item) for item in body.get("items") or [])
        metadata = body.get("metadata") or {}
        # The first page's version is the snapshot every later page is read at.
        resource_version = resource_version or str(metadata.get("resourceVersion") or "")
        token = metadata.get("continue") or None
        if not token:
            break
    return Listing(kind=kind, objects=tuple(objects), resource_version=resource_version)


def watch_objects(kind: Kind, *, resource_version: str, timeout_seconds: int = 60) -> Iterator[WatchEvent]:
    """Changes to ``kind`` after ``resource_version``, until the server ends the watch.

    Raises KubeGone when the version is too old (HTTP 410, as a status or as an
    ERROR event); the caller lists again. Other failures raise KubeError.
    """
    call = _list_call(kind)
    try:
        response = call(
            label_selector=SELECTORS[kind],
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            # The server ends the watch after timeout_seconds; the read timeout
            # only catches a connection that went silent.
            _request_timeout=(request_timeout(), timeout_seconds + request_timeout()),
            _headers=_headers(kind, watch=True),
        )
    except Exception as exc:
        raise translate(exc, f"watching {kind}s") from exc
    try:
        for line in iter_resp_lines(response):
            yield _event_from_line(kind, line)
    except KubeError:
        raise
    except Exception as exc:
        raise translate(exc, f"watching {kind}s") from exc
    finally:
        response.release_conn()


def _event_from_line(kind: Kind, line: str) -> WatchEvent:
    raw = json.loads(line)
    event_type = raw.get("type")
    obj = raw.get("object") or {}
    if event_type == "ERROR":
        code = int(obj.get("code") or 0)
        message = f"watching {kind}s: {obj.get('message') or obj.get('reason') or 'error'} (HTTP {code})"
        if code == 410:
            raise KubeGone(message, status=410, reason=str(obj.get("reason") or "Expired"))
        raise KubeError(message, status=code or None, reason=str(obj.get("reason") or ""))
    return WatchEvent(type=EventType(event_type), object=object_from_json(kind, obj))
