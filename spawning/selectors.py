"""Reads for the hub API: the data the spawn form is drawn from."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection

from inventory import freshness
from inventory.access import (
    Bound,
    NamespaceChoice,
    UserAccess,
    effective_bounds,
    may_use_graph,
    may_use_hdfs,
    may_use_profile,
    may_use_service_account,
    may_use_volume,
    namespace_choices,
    preset_fits,
)
from inventory.generation import GENERATION_PK
from inventory.models import InventoryGeneration, SyncRound
from spawning.form import CUSTOM_PRESET
from spawning.models import RememberedChoices
from spawning.snapshot import InventorySnapshot, Offer, inventory_snapshot

# Form fields whose remembered value is kept only while it is still offered.
_CHOICE_FIELDS = (
    "profile",
    "resource_preset",
    "k8s_namespace",
    "volume",
    "k8s_service_account",
    "hdfs",
    "gaffer_graph",
)
# Form field → bound it must lie within.
NUMBER_FIELDS: dict[str, str] = {
    "resources_cpu": "cpu",
    "resources_mem": "mem",
    "resources_hdd": "disk",
    "spark_cpu": "spark_cpu",
    "spark_mem": "spark_mem",
}


def _number(value: Decimal, bound_name: str) -> float | int:
    if bound_name in ("cpu", "spark_cpu"):
        return float(value)
    return int(value)


def _bounds_out(bounds: dict[str, Bound]) -> dict[str, dict[str, float | int]]:
    return {name: {"min": _number(b.min, name), "max": _number(b.max, name)} for name, b in bounds.items()}


def default_volume_name(server_name: str) -> str:
    """The original named a new volume after the server, or ``default`` for the default server."""
    return server_name or "default"


def inventory_freshness() -> dict[str, Any]:
    """When the inventory was last synced, and whether to distrust it (``inventory.freshness`` has the rule)."""
    return _freshness_out(freshness.inventory_freshness())


def _freshness_out(fresh: freshness.Freshness) -> dict[str, Any]:
    synced = fresh.last_synced_at
    return {"last_synced_at": synced.isoformat() if synced else None, "stale": fresh.stale}


@dataclass(frozen=True)
class RequestState:
    """What /options reads afresh on every request, in one round trip."""

    generation: tuple[int, uuid.UUID] | None
    freshness: dict[str, Any]
    remembered: dict[str, str]


def request_state(*, username: str, server_name: str) -> RequestState:
    """The inventory generation, the sync's freshness and the remembered choices, in one query.

    Plain SQL because this runs on every /options call: compiling three ORM
    queries cost more than running them. The same filters as
    ``inventory.freshness.inventory_freshness``, judged by the same rule, and a
    separate read of the remembered choices. Without the ORM's converters each
    value comes back as the driver gives it, which differs between PostgreSQL
    and SQLite; the suite runs on both.
    """
    generation_table = InventoryGeneration._meta.db_table
    rounds = SyncRound._meta.db_table
    choices_table = RememberedChoices._meta.db_table
    sql = (
        f"SELECT (SELECT number FROM {generation_table} WHERE id = %s),"  # noqa: S608
        f" (SELECT token FROM {generation_table} WHERE id = %s),"
        f" (SELECT finished_at FROM {rounds} WHERE status = %s AND finished_at IS NOT NULL"
        "   ORDER BY started_at DESC LIMIT 1),"
        f" (SELECT status FROM {rounds} WHERE kind = %s AND status <> %s ORDER BY started_at DESC LIMIT 1),"
        f" (SELECT choices FROM {choices_table} WHERE username = %s AND server_name = %s LIMIT 1)"
    )
    params: list[int | str] = [
        GENERATION_PK,
        GENERATION_PK,
        SyncRound.Status.COMPLETED.value,
        SyncRound.Kind.FULL.value,
        SyncRound.Status.RUNNING.value,
        username,
        server_name,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        number, token, last_completed, full_status, choices = cursor.fetchone()
    if isinstance(choices, str | bytes):
        choices = json.loads(choices)
    if isinstance(token, str):
        token = uuid.UUID(token)
    return RequestState(
        generation=(number, token) if number is not None else None,
        freshness=_freshness_out(freshness.freshness_from(freshness.as_aware(last_completed), full_status)),
        remembered=dict(choices) if isinstance(choices, dict) else {},
    )


def options_data(*, username: str, server_name: str, groups: list[str], default_namespace: str) -> dict[str, Any]:
    """Everything the spawn form offers this user; a fixed number of queries whatever the inventory size.

    What does not depend on the user comes from the per-process inventory snapshot
    (one query while the inventory is unchanged); the access rules are applied
    here with the predicates /prespawn uses.
    """
    state = request_state(username=username, server_name=server_name)
    snapshot = inventory_snapshot(generation=state.generation)
    access = snapshot.rules.for_user(username=username, groups=groups)
    return _options_data(
        snapshot=snapshot,
        state=state,
        access=access,
        username=username,
        server_name=server_name,
        default_namespace=default_namespace,
    )


def _namespaces(snapshot: InventorySnapshot, access: UserAccess) -> list[NamespaceChoice]:
    return namespace_choices(access=access, options=snapshot.namespace_options, present=snapshot.present_namespaces)


def _in_namespaces(by_namespace: Mapping[str, tuple[Offer, ...]], namespaces: list[str]) -> list[Offer]:
    """The offers in these namespaces, in the inventory's order."""
    offers = [offer for name in dict.fromkeys(namespaces) for offer in by_namespace.get(name, ())]
    return sorted(offers, key=lambda offer: offer.position)


def _options_data(
    *,
    snapshot: InventorySnapshot,
    state: RequestState,
    access: UserAccess,
    username: str,
    server_name: str,
    default_namespace: str,
) -> dict[str, Any]:
    presets = list(snapshot.presets)
    bounds = effective_bounds(access=access, presets=presets)
    namespaces = _namespaces(snapshot, access)
    namespace_names = [n.name for n in namespaces]
    accounts = [
        o
        for o in _in_namespaces(snapshot.accounts_by_namespace, namespace_names)
        if may_use_service_account(access, o.item, namespaces=namespace_names)
    ]
    volumes = [
        o
        for o in _in_namespaces(snapshot.volumes_by_namespace, namespace_names)
        if may_use_volume(access, o.item, namespaces=namespace_names)
    ]

    # Copies: the snapshot's dicts are shared by every request of this process.
    data: dict[str, Any] = {
        "username": username,
        "server_name": server_name,
        "profiles": [dict(o.out) for o in snapshot.profiles if may_use_profile(access, o.item)],
        "presets": [dict(snapshot.preset_out[p.pk]) for p in presets if preset_fits(p, bounds)],
        "bounds": _bounds_out(bounds),
        "namespaces": [{"name": n.name, "description": n.description} for n in namespaces],
        "service_accounts": [dict(o.out) for o in accounts],
        "volumes": [dict(o.out) for o in volumes],
        "hdfs": [dict(o.out) for o in snapshot.hdfs if may_use_hdfs(access, o.item)],
        "gaffer_graphs": [dict(o.out) for o in snapshot.graphs if may_use_graph(access, o.item)],
        "inventory": state.freshness,
    }
    data["selected"] = _selected(
        data=data,
        bounds=bounds,
        remembered=state.remembered,
        server_name=server_name,
        default_namespace=default_namespace,
    )
    return data


def _selected(
    *,
    data: dict[str, Any],
    bounds: dict[str, Bound],
    remembered: dict[str, str],
    server_name: str,
    default_namespace: str,
) -> dict[str, str]:
    """Last time's choices for this server where still offered and in bounds, else the defaults."""
    profiles = [p["slug"] for p in data["profiles"]]
    default_profile = next((p["slug"] for p in data["profiles"] if p["default"]), profiles[0] if profiles else "")
    presets = [p["slug"] for p in data["presets"]]
    default_preset = next((p["slug"] for p in data["presets"] if p["default"]), "")
    namespaces = [n["name"] for n in data["namespaces"]]
    if default_namespace in namespaces:
        namespace = default_namespace
    else:
        namespace = namespaces[0] if namespaces else ""

    selected: dict[str, str] = {
        "profile": default_profile,
        "resource_preset": default_preset,
        "k8s_namespace": namespace,
        "volume": "",
        "volume_name": default_volume_name(server_name),
        "k8s_service_account": "",
        "hdfs": "",
        "gaffer_graph": "",
    }
    for field, bound_name in NUMBER_FIELDS.items():
        selected[field] = str(_number(bounds[bound_name].default, bound_name))

    offered: dict[str, set[str]] = {
        "profile": set(profiles),
        "resource_preset": set(presets) | {CUSTOM_PRESET},
        "k8s_namespace": set(namespaces),
        "volume": {v["id"] for v in data["volumes"]} | {""},
        "k8s_service_account": {a["id"] for a in data["service_accounts"]} | {""},
        "hdfs": {i["id"] for i in data["hdfs"]} | {""},
        "gaffer_graph": {g["id"] for g in data["gaffer_graphs"]} | {""},
    }
    for field in _CHOICE_FIELDS:
        value = remembered.get(field)
        if isinstance(value, str) and value in offered[field]:
            selected[field] = value
    for field, bound_name in NUMBER_FIELDS.items():
        value = remembered.get(field)
        try:
            number = Decimal(str(value))
        except (ArithmeticError, ValueError):
            continue
        if value is not None and number.is_finite() and bounds[bound_name].contains(number):
            selected[field] = str(value)
    if isinstance(remembered.get("volume_name"), str) and remembered["volume_name"]:
        selected["volume_name"] = remembered["volume_name"]
    # A remembered account or volume from another namespace would be a choice the form cannot show.
    chosen_ns = selected["k8s_namespace"]
    for field, items in (("volume", data["volumes"]), ("k8s_service_account", data["service_accounts"])):
        if selected[field] and not any(i["id"] == selected[field] and i["namespace"] == chosen_ns for i in items):
            selected[field] = ""
    return selected
