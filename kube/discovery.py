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
from kube.names import POD_LABEL_ROLE, POD_LABEL_SERVER, POD_LABEL_USER, ROLE_NOTEBOOK
from kube.quantity import milli_map

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
    NODE = "Node"
    POD = "Pod"
    RESOURCE_QUOTA = "ResourceQuota"
    LIMIT_RANGE = "LimitRange"


_LIST_METHODS: dict[Kind, str] = {
    Kind.SERVICE: "list_service_for_all_namespaces",
    Kind.CONFIG_MAP: "list_config_map_for_all_namespaces",
    Kind.SECRET: "list_secret_for_all_namespaces",
    Kind.SERVICE_ACCOUNT: "list_service_account_for_all_namespaces",
    Kind.PVC: "list_persistent_volume_claim_for_all_namespaces",
    Kind.NAMESPACE: "list_namespace",
    Kind.NODE: "list_node",
    Kind.POD: "list_pod_for_all_namespaces",
    Kind.RESOURCE_QUOTA: "list_resource_quota_for_all_namespaces",
    Kind.LIMIT_RANGE: "list_limit_range_for_all_namespaces",
}

SELECTORS: dict[Kind, str | None] = {
    Kind.SERVICE: SERVICE_SELECTOR,
    Kind.CONFIG_MAP: GAFFER_CONFIG_SELECTOR,
    Kind.SECRET: GAFFER_SECRET_SELECTOR,
    Kind.SERVICE_ACCOUNT: SERVICE_ACCOUNT_SELECTOR,
    Kind.PVC: VOLUME_SELECTOR,
    Kind.NAMESPACE: None,
    Kind.NODE: None,
    Kind.POD: None,
    Kind.RESOURCE_QUOTA: None,
    Kind.LIMIT_RANGE: None,
}

# Only pods that hold their node's resources: bound and not finished. A pod that
# finishes leaves this selection, and the watch reports it as DELETED.
RUNNING_POD_FIELDS = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
FIELD_SELECTORS: dict[Kind, str] = {Kind.POD: RUNNING_POD_FIELDS}

_NOTEBOOK_LABELS = (POD_LABEL_ROLE, POD_LABEL_USER, POD_LABEL_SERVER)
# KubeSpawner's name for the container that runs the notebook server.
NOTEBOOK_CONTAINER = "notebook"


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
    # Node: taints ({key, value, effect}), allocatable in milli-units, readiness.
    taints: tuple[Mapping[str, str], ...] = ()
    allocatable: Mapping[str, int] = field(default_factory=dict)
    ready: bool = False
    unschedulable: bool = False
    # Pod: its node, and what it asks of that node in milli-units (see pod_requests).
    node_name: str = ""
    requests: Mapping[str, int] = field(default_factory=dict)
    # Notebook pods only (see is_notebook): the notebook container's image and status.startTime.
    image: str = ""
    started_at: str = ""
    # ResourceQuota: status.hard and status.used, as quantities.
    quota_hard: Mapping[str, str] = field(default_factory=dict)
    quota_used: Mapping[str, str] = field(default_factory=dict)
    # LimitRange: spec.limits as the apiserver stored them (its defaulting applied).
    limit_items: tuple[Mapping[str, Any], ...] = ()

    @property
    def ref(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def is_hdfs_namenode(self) -> bool:
        return _matches(self.labels, "hdfs", "namenode")

    def is_gaffer_api(self) -> bool:
        return _matches(self.labels, "gaffer", "api")

    def is_notebook(self) -> bool:
        return self.kind is Kind.POD and self.labels.get(POD_LABEL_ROLE) == ROLE_NOTEBOOK


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


def _field_selector(kind: Kind) -> dict[str, str]:
    return {"field_selector": FIELD_SELECTORS[kind]} if kind in FIELD_SELECTORS else {}


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
    elif kind in _COMPUTE_KINDS:
        return _compute_object(kind, meta, spec, status)
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


_COMPUTE_KINDS = frozenset({Kind.NODE, Kind.POD, Kind.RESOURCE_QUOTA, Kind.LIMIT_RANGE})


def _compute_object(
    kind: Kind, meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any]
) -> KubeObject:
    """Nodes, pods, quotas and limit ranges keep only what capacity needs: no labels
    or annotations for pods (there may be 20,000 of them), no full specs."""
    common: dict[str, Any] = {
        "kind": kind,
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
        "resource_version": str(meta.get("resourceVersion") or ""),
    }
    if kind is Kind.NODE:
        conditions = {str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or []}
        return KubeObject(
            **common,
            labels=dict(meta.get("labels") or {}),
            taints=tuple(
                {
                    "key": str(t.get("key") or ""),
                    "value": str(t.get("value") or ""),
                    "effect": str(t.get("effect") or ""),
                }
                for t in spec.get("taints") or []
            ),
            allocatable=milli_map(status.get("allocatable") or status.get("capacity")),
            ready=conditions.get("Ready") == "True",
            unschedulable=bool(spec.get("unschedulable")),
        )
    if kind is Kind.POD:
        labels = meta.get("labels") or {}
        notebook: dict[str, Any] = {}
        if labels.get(POD_LABEL_ROLE) == ROLE_NOTEBOOK:
            # Only notebook pods keep labels, and only ours: the dashboard counts them.
            notebook = {
                "labels": {key: str(labels[key]) for key in _NOTEBOOK_LABELS if key in labels},
                "image": _notebook_image(spec),
                "started_at": str(status.get("startTime") or meta.get("creationTimestamp") or ""),
            }
        return KubeObject(
            **common,
            phase=str(status.get("phase") or ""),
            node_name=str(spec.get("nodeName") or ""),
            requests=pod_requests(spec),
            **notebook,
        )
    if kind is Kind.RESOURCE_QUOTA:
        return KubeObject(
            **common,
            quota_hard={str(k): str(v) for k, v in (status.get("hard") or spec.get("hard") or {}).items()},
            quota_used={str(k): str(v) for k, v in (status.get("used") or {}).items()},
        )
    return KubeObject(**common, limit_items=tuple(dict(item) for item in spec.get("limits") or []))


def _notebook_image(spec: Mapping[str, Any]) -> str:
    containers = spec.get("containers") or []
    for container in containers:
        if container.get("name") == NOTEBOOK_CONTAINER:
            return str(container.get("image") or "")
    return str(containers[0].get("image") or "") if containers else ""


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, amount in more.items():
        total[name] = total.get(name, 0) + amount


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """What a pod holds on its node, in milli-units, as the scheduler counts it.

    The containers' requests add up; an ordinary init container runs alone (beside
    the sidecars started before it), so only the largest counts; sidecar init
    containers (restartPolicy Always) run alongside everything; the pod's overhead
    comes on top. Every pod also takes one of the node's ``pods`` slots.
    """
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        _add(total, milli_map((container.get("resources") or {}).get("requests")))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or []:
        asks = milli_map((container.get("resources") or {}).get("requests"))
        if container.get("restartPolicy") == "Always":
            _add(total, asks)
            _add(sidecars, asks)
            running = dict(sidecars)
        else:
            running = dict(asks)
            _add(running, sidecars)
        for name, amount in running.items():
            init_peak[name] = max(init_peak.get(name, 0), amount)
    for name, amount in init_peak.items():
        total[name] = max(total.get(name, 0), amount)
    _add(total, milli_map(spec.get("overhead")))
    total["pods"] = 1000
    return {name: amount for name, amount in total.items() if amount}


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
                **_field_selector(kind),
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
            **_field_selector(kind),
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
