"""Services that bring the inventory in line with the cluster.

A round loads the rows it may touch, compares only observed columns with
what the cluster shows, and writes just the difference (``bulk_update`` /
``bulk_create``), so an unchanged cluster costs no writes. Rows whose object
is gone get ``missing_since``; only a *successful* list may say that, so an
apiserver outage never empties the spawn form. Rows added by operators
(``source=manual``) and operator-owned columns are never written here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inventory.generation import bump_inventory_generation
from inventory.models import (
    CAPACITY_MODELS,
    ClusterNode,
    Discovered,
    GafferGraph,
    HdfsInstance,
    LimitRange,
    Namespace,
    NodeUsage,
    NotebookPod,
    NotebookVolume,
    PodRequest,
    ResourceQuota,
    ServiceAccount,
    Source,
    SyncRound,
)
from kube.client import KubeError
from kube.concurrent import run_settled
from kube.discovery import (
    DEFAULT_PAGE_SIZE,
    EventType,
    Kind,
    KubeObject,
    Listing,
    WatchEvent,
    list_objects,
)
from kube.names import POD_LABEL_SERVER, POD_LABEL_USER

logger = logging.getLogger("optionsportal.sync")

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
USERS_ANNOTATION = "hub.jupyter.org/users"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"

Fields = dict[str, Any]
Desired = dict[str, Fields]


# --- What the cluster shows ----------------------------------------------


class ClusterState:
    """The latest objects of every kind, as the last list plus the watch events since."""

    def __init__(self) -> None:
        self.objects: dict[Kind, dict[tuple[str, str], KubeObject]] = {kind: {} for kind in Kind}
        self.listed: set[Kind] = set()
        self.list_versions: dict[Kind, int] = {}

    def replace(self, listing: Listing) -> None:
        self.objects[listing.kind] = {obj.ref: obj for obj in listing.objects}
        self.listed.add(listing.kind)
        self.list_versions[listing.kind] = _version(listing.resource_version)

    def apply(self, kind: Kind, event: WatchEvent) -> tuple[KubeObject | None, KubeObject] | None:
        """Record one event; returns (before, after) or None when the event is already known.

        Resource versions are etcd revisions: an event no newer than the last
        list of its kind is already part of that list, and replaying it (it may
        have queued while a periodic resync listed) would step back in time.
        """
        if event.type is EventType.BOOKMARK:
            return None
        version = _version(event.resource_version)
        if version and version <= self.list_versions.get(kind, 0):
            return None
        store = self.objects[kind]
        before = store.get(event.object.ref)
        if before is not None and version and version < _version(before.resource_version):
            return None
        if event.type is EventType.DELETED:
            store.pop(event.object.ref, None)
        else:
            store[event.object.ref] = event.object
        return before, event.object

    def of(self, kind: Kind) -> Iterable[KubeObject]:
        return self.objects[kind].values()


def _version(resource_version: str) -> int:
    try:
        return int(resource_version)
    except (TypeError, ValueError):
        return 0


# --- From objects to observed columns --------------------------------------


def _instance_key(obj: KubeObject) -> str:
    return f"{obj.namespace}:{obj.labels.get(INSTANCE_LABEL) or obj.name}"


def _common(obj: KubeObject, name: str) -> Fields:
    return {
        "namespace": obj.namespace,
        "name": name,
        "uid": obj.uid,
        "labels": dict(obj.labels),
        "annotations": dict(obj.annotations),
    }


def _service_url(scheme: str, obj: KubeObject, port_name: str, suffix: str = "") -> str:
    port = obj.ports.get(port_name)
    if not port:
        return ""
    return f"{scheme}://{obj.name}.{obj.namespace}.svc:{port}{suffix}"


def desired_namespaces(state: ClusterState) -> Desired:
    return {obj.name: {"uid": obj.uid, "labels": dict(obj.labels)} for obj in state.of(Kind.NAMESPACE)}


def desired_hdfs(state: ClusterState) -> Desired:
    desired: Desired = {}
    for obj in sorted(state.of(Kind.SERVICE), key=lambda o: o.ref):
        if obj.is_hdfs_namenode():
            desired[_instance_key(obj)] = {
                **_common(obj, obj.labels.get(INSTANCE_LABEL) or obj.name),
                "observed_url": _service_url("hdfs", obj, "client-rpc"),
            }
    return desired


def desired_gaffer(state: ClusterState) -> Desired:
    configs: dict[tuple[str, str], KubeObject] = {}
    for obj in sorted(state.of(Kind.CONFIG_MAP), key=lambda o: o.ref):
        configs[(_instance_key(obj), obj.labels.get(COMPONENT_LABEL, ""))] = obj
    secrets = {_instance_key(obj): obj for obj in sorted(state.of(Kind.SECRET), key=lambda o: o.ref)}
    apis = {
        _instance_key(obj): obj for obj in sorted(state.of(Kind.SERVICE), key=lambda o: o.ref) if obj.is_gaffer_api()
    }
    desired: Desired = {}
    # The original offered a graph once its store-properties Secret existed, with or
    # without a REST API Service; a Service alone gives a row that is not yet offered.
    for key in sorted(apis.keys() | secrets.keys()):
        api = apis.get(key)
        graph_config = configs.get((key, "graph-config"))
        schema = configs.get((key, "schema"))
        secret = secrets.get(key)
        obj = api or secrets[key]
        desired[key] = {
            **_common(obj, obj.labels.get(INSTANCE_LABEL) or obj.name),
            "observed_url": _service_url("http", api, "http", "/rest") if api else "",
            "observed_description": _graph_description(graph_config),
            "api_service": api.name if api else "",
            "graph_config_map": graph_config.name if graph_config else "",
            "graph_config_files": dict(graph_config.data) if graph_config else {},
            "schema_config_map": schema.name if schema else "",
            "schema_files": dict(schema.data) if schema else {},
            "store_secret": secret.name if secret else "",
        }
    return desired


def _graph_description(config_map: KubeObject | None) -> str:
    if config_map is None:
        return ""
    try:
        graph_config = json.loads(config_map.data.get("graphConfig.json") or "{}")
    except ValueError:
        return ""
    if not isinstance(graph_config, dict):
        return ""
    return str(graph_config.get("description") or "")


def desired_service_accounts(state: ClusterState) -> Desired:
    desired: Desired = {}
    for obj in state.of(Kind.SERVICE_ACCOUNT):
        users = obj.annotations.get(USERS_ANNOTATION, "")
        desired[f"{obj.namespace}:{obj.name}"] = {
            **_common(obj, obj.name),
            "observed_role_arn": obj.annotations.get(ROLE_ARN_ANNOTATION, ""),
            "observed_users": [user.strip() for user in users.split(",") if user.strip()],
        }
    return desired


def _owner(obj: KubeObject, key: str) -> str:
    # Annotations hold the raw names; labels only their DNS-safe escapes.
    return obj.annotations.get(key) or obj.labels.get(key) or ""


def desired_volumes(state: ClusterState) -> Desired:
    desired: Desired = {}
    for obj in state.of(Kind.PVC):
        desired[f"{obj.namespace}:{obj.name}"] = {
            **_common(obj, obj.name),
            # Ownership is decided on these two apart (see NotebookVolume.owner_label).
            "owner_username": obj.annotations.get("hub.jupyter.org/username", ""),
            "owner_label": obj.labels.get("hub.jupyter.org/username", ""),
            "owner_servername": _owner(obj, "hub.jupyter.org/servername"),
            "volume_name": _owner(obj, "hub.jupyter.org/volume-name"),
            "capacity": obj.capacity,
            "phase": obj.phase,
        }
    return desired


def desired_nodes(state: ClusterState) -> Desired:
    return {
        obj.name: {
            "uid": obj.uid,
            "labels": dict(obj.labels),
            "taints": [dict(taint) for taint in obj.taints],
            "allocatable": dict(obj.allocatable),
            "ready": obj.ready,
            "unschedulable": obj.unschedulable,
        }
        for obj in state.of(Kind.NODE)
    }


def desired_quotas(state: ClusterState) -> Desired:
    return {
        f"{obj.namespace}:{obj.name}": {
            "namespace": obj.namespace,
            "name": obj.name,
            "uid": obj.uid,
            "hard": dict(obj.quota_hard),
            "used": dict(obj.quota_used),
        }
        for obj in state.of(Kind.RESOURCE_QUOTA)
    }


def desired_limit_ranges(state: ClusterState) -> Desired:
    return {
        f"{obj.namespace}:{obj.name}": {
            "namespace": obj.namespace,
            "name": obj.name,
            "uid": obj.uid,
            "limits": [dict(item) for item in obj.limit_items],
        }
        for obj in state.of(Kind.LIMIT_RANGE)
    }


def _pod_fields(obj: KubeObject) -> Fields:
    return {"node_name": obj.node_name, "requests": dict(obj.requests)}


def desired_pods(state: ClusterState) -> Desired:
    return {f"{obj.namespace}:{obj.name}": _pod_fields(obj) for obj in state.of(Kind.POD)}


def desired_pods_of(state: ClusterState, keys: set[str]) -> Desired:
    """Only the pods a batch of events touched: a pod starting costs one lookup, not a recount."""
    store = state.objects[Kind.POD]
    desired: Desired = {}
    for key in keys:
        namespace, _, name = key.partition(":")
        obj = store.get((namespace, name))
        if obj is not None:
            desired[key] = _pod_fields(obj)
    return desired


def _gpu_milli(requests: Mapping[str, int]) -> int:
    return sum(amount for name, amount in requests.items() if name.endswith("/gpu"))


def _notebook_fields(obj: KubeObject) -> Fields:
    return {
        "namespace": obj.namespace,
        "name": obj.name,
        "uid": obj.uid,
        "username": obj.labels.get(POD_LABEL_USER, ""),
        "server_name": obj.labels.get(POD_LABEL_SERVER, ""),
        "image": obj.image,
        "node_name": obj.node_name,
        "cpu": obj.requests.get("cpu", 0),
        "memory": obj.requests.get("memory", 0),
        "gpu": _gpu_milli(obj.requests),
        "phase": obj.phase,
        "started_at": parse_datetime(obj.started_at) if obj.started_at else None,
    }


def desired_notebook_pods(state: ClusterState) -> Desired:
    return {f"{obj.namespace}:{obj.name}": _notebook_fields(obj) for obj in state.of(Kind.POD) if obj.is_notebook()}


def desired_notebook_pods_of(state: ClusterState, keys: set[str]) -> Desired:
    store = state.objects[Kind.POD]
    desired: Desired = {}
    for key in keys:
        namespace, _, name = key.partition(":")
        obj = store.get((namespace, name))
        if obj is not None and obj.is_notebook():
            desired[key] = _notebook_fields(obj)
    return desired


# A model the sync keeps: the discovered kinds, Namespace, and the compute inventory.
Tracked = TypeVar("Tracked", Discovered, Namespace, ClusterNode, ResourceQuota, LimitRange)


@dataclass(frozen=True)
class Target(Generic[Tracked]):
    """One inventory model, the kinds it is built from, and how."""

    name: str
    model: type[Tracked]
    key_field: str
    sources: tuple[Kind, ...]
    desired: Callable[[ClusterState], Desired]
    # For large kinds: the desired rows of just these keys, without building all of them.
    desired_of_keys: Callable[[ClusterState, set[str]], Desired] | None = None
    # Whether rows appearing or going (not their values) feed the form's snapshot: the
    # snapshot keeps which namespaces have a quota or limit range, so /prespawn reads
    # them only where they exist (spawning/offers/machine_type.py).
    presence_feeds_form: bool = False

    @property
    def feeds_form(self) -> bool:
        """Whether the spawn form's snapshot is built from these rows (not from capacity's)."""
        return self.model not in CAPACITY_MODELS

    def desired_for(self, state: ClusterState, keys: set[str] | None) -> Desired:
        if keys is not None and self.desired_of_keys is not None:
            return self.desired_of_keys(state, keys)
        return self.desired(state)

    def keys_for(self, obj: KubeObject) -> set[str]:
        """The rows one object contributes to (used to scope watch updates)."""
        if self.model in (Namespace, ClusterNode):
            return {obj.name}
        if self.model is HdfsInstance:
            return {_instance_key(obj)} if obj.is_hdfs_namenode() else set()
        if self.model is GafferGraph:
            if obj.kind is Kind.SERVICE and not obj.is_gaffer_api():
                return set()
            return {_instance_key(obj)}
        if self.model is NotebookPod and not obj.is_notebook():
            # Most pods are not notebooks: their events cost the notebook rows no query.
            return set()
        return {f"{obj.namespace}:{obj.name}"}


TARGETS: tuple[Target[Any], ...] = (
    Target("namespaces", Namespace, "name", (Kind.NAMESPACE,), desired_namespaces),
    Target("hdfs", HdfsInstance, "key", (Kind.SERVICE,), desired_hdfs),
    Target("gaffer", GafferGraph, "key", (Kind.SERVICE, Kind.CONFIG_MAP, Kind.SECRET), desired_gaffer),
    Target("service_accounts", ServiceAccount, "key", (Kind.SERVICE_ACCOUNT,), desired_service_accounts),
    Target("volumes", NotebookVolume, "key", (Kind.PVC,), desired_volumes),
    Target("nodes", ClusterNode, "name", (Kind.NODE,), desired_nodes),
    Target("pods", PodRequest, "pod", (Kind.POD,), desired_pods, desired_pods_of),
    Target(
        "notebook_pods",
        NotebookPod,
        "ref",
        (Kind.POD,),
        desired_notebook_pods,
        desired_notebook_pods_of,
    ),
    Target(
        "resource_quotas",
        ResourceQuota,
        "ref",
        (Kind.RESOURCE_QUOTA,),
        desired_quotas,
        presence_feeds_form=True,
    ),
    Target(
        "limit_ranges",
        LimitRange,
        "ref",
        (Kind.LIMIT_RANGE,),
        desired_limit_ranges,
        presence_feeds_form=True,
    ),
)


# --- Writing the difference ------------------------------------------------


@dataclass
class Outcome:
    """What a round did, for the SyncRound row and the console."""

    added: int = 0
    changed: int = 0
    marked_missing: int = 0
    returned: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    by_target: dict[str, dict[str, int]] = field(default_factory=dict)
    # (action, target, key) for the console.
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return self.added + self.changed + self.marked_missing + self.returned

    def record(self, action: str, target: Target[Any], key: str) -> None:
        setattr(self, action, getattr(self, action) + 1)
        counts = self.by_target.setdefault(target.name, {})
        counts[action] = counts.get(action, 0) + 1
        self.changes.append((action, target.name, key))


def _clean_text(value: Any) -> Any:
    """Drop NUL characters, which PostgreSQL cannot store in text or JSON, at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean_text(k): _clean_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_text(v) for v in value]
    return value


def fit_to_columns(model: type[models.Model], fields: Mapping[str, Any]) -> Fields:
    """Observed values as the columns can hold them.

    Anyone who may create a PVC or a ServiceAccount writes these annotations: one
    over-long or NUL-bearing value must not fail the whole round for everybody.
    """
    fitted: Fields = {}
    for name, value in fields.items():
        value = _clean_text(value)
        limit = getattr(model._meta.get_field(name), "max_length", None)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            value = value[:limit]
        fitted[name] = value
    return fitted


def reconcile(
    *, target: Target[Tracked], desired: Mapping[str, Fields], keys: set[str] | None, now: datetime, outcome: Outcome
) -> None:
    """Write the difference between ``desired`` and the rows (all of them, or only ``keys``).

    A row whose key is in scope but not desired is marked missing: callers
    pass only what a successful list (or a watch since one) shows.
    """
    if target.model is PodRequest:
        reconcile_pod_requests(target=target, desired=desired, keys=keys, outcome=outcome)
        return
    if target.model is NotebookPod:
        reconcile_notebook_pods(target=target, desired=desired, keys=keys, now=now, outcome=outcome)
        return
    model = target.model
    key_field = target.key_field
    observed: tuple[str, ...] = model.OBSERVED_FIELDS
    is_discovered = key_field == "key"
    columns = [key_field, "missing_since", "last_seen", *observed]
    if is_discovered:
        columns.append("source")
    rows = model.objects.only(*columns)
    if keys is not None:
        rows = rows.filter(**{f"{key_field}__in": list(keys)})
    existing = {getattr(row, key_field): row for row in rows}

    to_create: list[Tracked] = []
    to_update: list[Tracked] = []
    update_fields: set[str] = set()
    presence_changed = False
    wanted = desired if keys is None else {key: desired[key] for key in keys if key in desired}
    for key, raw_fields in wanted.items():
        fields = fit_to_columns(model, raw_fields)
        row = existing.get(key)
        if row is None:
            extra = {"source": Source.DISCOVERED} if is_discovered else {}
            to_create.append(model(**{key_field: key}, **fields, **extra, first_seen=now, last_seen=now))
            outcome.record("added", target, key)
            continue
        if isinstance(row, Discovered) and row.source == Source.MANUAL:
            continue
        changed = [name for name, value in fields.items() if getattr(row, name) != value]
        came_back = row.missing_since is not None
        if not changed and not came_back:
            continue
        for name in changed:
            setattr(row, name, fields[name])
        update_fields.update(changed)
        if came_back:
            row.missing_since = None
            update_fields.add("missing_since")
            presence_changed = True
            outcome.record("returned", target, key)
        else:
            outcome.record("changed", target, key)
        row.last_seen = now
        update_fields.add("last_seen")
        to_update.append(row)

    for key, row in existing.items():
        if key in wanted or row.missing_since is not None:
            continue
        if isinstance(row, Discovered) and row.source == Source.MANUAL:
            continue
        row.missing_since = now
        update_fields.add("missing_since")
        to_update.append(row)
        presence_changed = True
        outcome.record("marked_missing", target, key)

    if to_create:
        model.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        model.objects.bulk_update(to_update, sorted(update_fields), batch_size=500)
    feeds_form = target.feeds_form or (target.presence_feeds_form and (to_create or presence_changed))
    if (to_create or to_update) and feeds_form:
        # Bulk writes send no signals: tell the form's readers here, in the writer's transaction.
        bump_inventory_generation()


def reconcile_pod_requests(
    *, target: Target[Any], desired: Mapping[str, Fields], keys: set[str] | None, outcome: Outcome
) -> None:
    """Bring the per-pod request rows in line; a pod that is gone loses its rows.

    Pods come and go by the thousand and carry no operator choices, so unlike
    the other rows they are deleted rather than marked missing.
    """
    rows = PodRequest.objects.values_list("pod", "node_name", "resource", "amount")
    if keys is not None:
        rows = rows.filter(pod__in=list(keys))
    existing: dict[str, set[tuple[str, str, int]]] = defaultdict(set)
    for pod, node_name, resource, amount in rows.iterator(chunk_size=5000):
        existing[pod].add((node_name, resource, amount))
    wanted = desired if keys is None else {key: desired[key] for key in keys if key in desired}
    stale: list[str] = []
    fresh: list[PodRequest] = []
    for pod, fields in wanted.items():
        rows_now = {(fields["node_name"], resource, amount) for resource, amount in fields["requests"].items()}
        before = existing.get(pod)
        if before == rows_now:
            continue
        if before is not None:
            stale.append(pod)
        outcome.record("changed" if before is not None else "added", target, pod)
        fresh.extend(PodRequest(pod=pod, node_name=node, resource=res, amount=amt) for node, res, amt in rows_now)
    for pod in existing.keys() - wanted.keys():
        stale.append(pod)
        outcome.record("marked_missing", target, pod)
    for start in range(0, len(stale), 1000):
        PodRequest.objects.filter(pod__in=stale[start : start + 1000]).delete()
    if fresh:
        PodRequest.objects.bulk_create(fresh, batch_size=2000)
    if keys is None:
        # A full round recounts, so a delta lost to a crash or a bug heals at the next resync.
        _write_node_usage(_usage_of(_rows_of(wanted)), replace=True)
    else:
        delta: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for pod in stale:
            for node_name, resource, amount in existing[pod]:
                delta[node_name][resource] -= amount
        for row in fresh:
            delta[row.node_name][row.resource] += row.amount
        _write_node_usage(delta, replace=False)


def _rows_of(wanted: Mapping[str, Fields]) -> Iterable[tuple[str, str, int]]:
    for fields in wanted.values():
        for resource, amount in fields["requests"].items():
            yield fields["node_name"], resource, amount


def _usage_of(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for node_name, resource, amount in rows:
        usage[node_name][resource] += amount
    return usage


def _write_node_usage(change: Mapping[str, Mapping[str, int]], *, replace: bool) -> None:
    """Add ``change`` to the per-node sums (or, with ``replace``, make them exactly ``change``).

    One read of the nodes concerned and one write per kind of row; a node left with
    nothing requested loses its row, as its pods' rows went.
    """
    rows = NodeUsage.objects.all() if replace else NodeUsage.objects.filter(node_name__in=list(change))
    existing = {row.node_name: row for row in rows}
    to_create: list[NodeUsage] = []
    to_update: list[NodeUsage] = []
    gone: list[str] = [name for name in existing if name not in change] if replace else []
    for node_name, amounts in change.items():
        row = existing.get(node_name)
        if replace:
            used = {name: amount for name, amount in amounts.items() if amount}
        else:
            used = dict(row.used) if row is not None else {}
            for name, amount in amounts.items():
                used[name] = used.get(name, 0) + amount
            used = {name: amount for name, amount in used.items() if amount}
        if not used:
            if row is not None:
                gone.append(node_name)
        elif row is None:
            to_create.append(NodeUsage(node_name=node_name, used=dict(sorted(used.items()))))
        elif row.used != used:
            row.used = dict(sorted(used.items()))
            to_update.append(row)
    for start in range(0, len(gone), 1000):
        NodeUsage.objects.filter(node_name__in=gone[start : start + 1000]).delete()
    if to_create:
        NodeUsage.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        NodeUsage.objects.bulk_update(to_update, ["used"], batch_size=500)


def reconcile_notebook_pods(
    *, target: Target[Any], desired: Mapping[str, Fields], keys: set[str] | None, now: datetime, outcome: Outcome
) -> None:
    """Bring the running-notebook rows in line; as with PodRequest, a notebook that ends loses its row."""
    rows = NotebookPod.objects.only("ref", *NotebookPod.OBSERVED_FIELDS)
    if keys is not None:
        rows = rows.filter(ref__in=list(keys))
    existing = {row.ref: row for row in rows}
    wanted = desired if keys is None else {key: desired[key] for key in keys if key in desired}
    to_create: list[NotebookPod] = []
    to_update: list[NotebookPod] = []
    update_fields: set[str] = {"last_seen"}
    for key, raw_fields in wanted.items():
        fields = fit_to_columns(NotebookPod, raw_fields)
        row = existing.get(key)
        if row is None:
            to_create.append(NotebookPod(ref=key, **fields, first_seen=now, last_seen=now))
            outcome.record("added", target, key)
            continue
        changed = [name for name, value in fields.items() if getattr(row, name) != value]
        if not changed:
            continue
        for name in changed:
            setattr(row, name, fields[name])
        row.last_seen = now
        update_fields.update(changed)
        to_update.append(row)
        outcome.record("changed", target, key)
    gone = sorted(existing.keys() - wanted.keys())
    for key in gone:
        outcome.record("marked_missing", target, key)
    for start in range(0, len(gone), 1000):
        NotebookPod.objects.filter(ref__in=gone[start : start + 1000]).delete()
    if to_create:
        NotebookPod.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        NotebookPod.objects.bulk_update(to_update, sorted(update_fields), batch_size=500)


def _reconcile_full(state: ClusterState, targets: Iterable[Target[Any]], now: datetime, outcome: Outcome) -> None:
    for target in targets:
        if all(kind in state.listed for kind in target.sources):
            reconcile(target=target, desired=target.desired(state), keys=None, now=now, outcome=outcome)


# --- Rounds ----------------------------------------------------------------


def list_cluster(*, page_size: int = DEFAULT_PAGE_SIZE) -> tuple[dict[Kind, Listing], dict[Kind, str]]:
    """List every kind at once (the lists are I/O bound); returns listings and errors by kind."""
    kinds = list(Kind)
    results = run_settled([partial(list_objects, kind, page_size=page_size) for kind in kinds])
    listings: dict[Kind, Listing] = {}
    errors: dict[Kind, str] = {}
    for kind, result in zip(kinds, results, strict=True):
        if isinstance(result, KubeError):
            errors[kind] = str(result)
        else:
            listings[kind] = result
    return listings, errors


def _start_round(kind: str) -> SyncRound:
    return SyncRound.objects.create(kind=kind, status=SyncRound.Status.RUNNING, started_at=timezone.now())


def _finish_round(sync_round: SyncRound, outcome: Outcome, *, extra: Mapping[str, Any] | None = None) -> SyncRound:
    sync_round.finished_at = timezone.now()
    sync_round.status = SyncRound.Status.FAILED if outcome.errors else SyncRound.Status.COMPLETED
    sync_round.error = "\n".join(outcome.errors)
    sync_round.objects_seen = sum(outcome.seen.values())
    sync_round.added = outcome.added
    sync_round.changed = outcome.changed
    sync_round.marked_missing = outcome.marked_missing
    sync_round.returned = outcome.returned
    sync_round.details = {"seen": outcome.seen, "targets": outcome.by_target, **(extra or {})}
    sync_round.save()
    return sync_round


def sync_full_round(
    *, state: ClusterState | None = None, page_size: int = DEFAULT_PAGE_SIZE
) -> tuple[SyncRound, Outcome]:
    """List everything and bring every model in line; recorded as one SyncRound.

    A kind whose list fails leaves the models built from it untouched (nothing
    is marked missing on a failed list) and makes the round ``failed``.
    """
    state = state if state is not None else ClusterState()
    sync_round = _start_round(SyncRound.Kind.FULL)
    outcome = Outcome()
    listings, errors = list_cluster(page_size=page_size)
    for kind, listing in listings.items():
        state.replace(listing)
        outcome.seen[kind.value] = len(listing.objects)
    # A missing kubeconfig fails every kind with the same message: say it once.
    outcome.errors.extend(dict.fromkeys(errors[kind] for kind in Kind if kind in errors))
    now = timezone.now()
    try:
        with transaction.atomic():
            _reconcile_full(state, (t for t in TARGETS if not set(t.sources) & errors.keys()), now, outcome)
    except DatabaseError as exc:
        # The whole round rolled back; say so on its record, if the database still listens.
        outcome.errors.append(f"database: {exc}")
        with contextlib.suppress(DatabaseError):
            SyncRound.objects.filter(pk=sync_round.pk).update(
                status=SyncRound.Status.FAILED, finished_at=timezone.now(), error="\n".join(outcome.errors)
            )
        raise
    return _finish_round(sync_round, outcome), outcome


@dataclass(frozen=True)
class Change:
    """A watch event for the loop's queue."""

    kind: Kind
    event: WatchEvent


@dataclass(frozen=True)
class Relist:
    """A fresh list of one kind (after 410 or a dropped watch) for the loop's queue."""

    listing: Listing


def sync_apply(*, state: ClusterState, items: Iterable[Change | Relist]) -> tuple[SyncRound | None, Outcome]:
    """Apply watch events and relists; records a ``watch`` SyncRound only if rows were written."""
    outcome = Outcome()
    affected: dict[str, set[str]] = defaultdict(set)
    relisted: set[Kind] = set()
    events = 0
    for item in items:
        if isinstance(item, Relist):
            state.replace(item.listing)
            relisted.add(item.listing.kind)
            outcome.seen[item.listing.kind.value] = len(item.listing.objects)
            continue
        applied = state.apply(item.kind, item.event)
        if applied is None:
            continue
        events += 1
        for target in TARGETS:
            if item.kind in target.sources:
                for obj in applied:
                    if obj is not None:
                        affected[target.name].update(target.keys_for(obj))
    if not affected and not relisted:
        return None, outcome
    now = timezone.now()
    with transaction.atomic():
        for target in TARGETS:
            if not all(kind in state.listed for kind in target.sources):
                continue
            if relisted & set(target.sources):
                reconcile(target=target, desired=target.desired(state), keys=None, now=now, outcome=outcome)
            elif affected.get(target.name):
                keys = affected[target.name]
                reconcile(target=target, desired=target.desired_for(state, keys), keys=keys, now=now, outcome=outcome)
    if not outcome.rows_written:
        return None, outcome
    sync_round = SyncRound(kind=SyncRound.Kind.WATCH, started_at=now)
    extra = {"events": events, "relisted": sorted(kind.value for kind in relisted)}
    return _finish_round(sync_round, outcome, extra=extra), outcome


# --- One writer at a time --------------------------------------------------

# pg advisory locks take a bigint; a fixed hash keeps it stable across releases.
WRITER_LOCK_KEY = zlib.crc32(b"optionsportal.sync_cluster")


class WriterLock:
    """PostgreSQL session advisory lock on a connection of its own.

    The lock lives as long as that connection, so a crashed writer frees it
    and a standby replica takes over. SQLite has no such lock (and is only for
    development): there the lock always succeeds, with a log line saying so.
    """

    def __init__(self, *, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.alias = alias
        self._connection: Any = None
        self._held = False
        self._mutex = threading.Lock()

    @property
    def supported(self) -> bool:
        return connections[self.alias].vendor == "postgresql"

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> bool:
        with self._mutex:
            if self._held:
                return True
            if not self.supported:
                logger.info(
                    "no writer lock on %s: assuming this is the only sync process", connections[self.alias].vendor
                )
                self._held = True
                return True
            if self._connection is None:
                self._connection = connections.create_connection(self.alias)
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [WRITER_LOCK_KEY])
                self._held = bool(cursor.fetchone()[0])
            if not self._held:
                self._close()
            return self._held

    def still_held(self) -> bool:
        """False when the lock's connection was lost (then another process may write)."""
        with self._mutex:
            if not self._held or self._connection is None:
                return self._held
            try:
                with self._connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                        # One-bigint advisory locks show as classid 0, objsubid 1.
                        " AND classid = 0 AND objsubid = 1 AND objid::bigint = %s AND granted",
                        [WRITER_LOCK_KEY],
                    )
                    self._held = bool(cursor.fetchone()[0])
            except Exception:  # noqa: BLE001 - any failure means the session (and lock) is gone
                logger.warning("lost the writer lock's database connection")
                self._held = False
            if not self._held:
                self._close()
            return self._held

    def release(self) -> None:
        with self._mutex:
            if self._connection is not None and self._held:
                try:
                    with self._connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [WRITER_LOCK_KEY])
                except Exception:  # noqa: BLE001 - closing the session frees the lock anyway
                    logger.warning("could not unlock the writer lock; closing its connection")
            self._held = False
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
