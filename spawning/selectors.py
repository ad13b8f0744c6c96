"""Reads for the hub API: the data the spawn form is drawn from."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from inventory.access import (
    Bound,
    UserAccess,
    effective_bounds,
    graph_list,
    hdfs_list,
    namespace_list,
    preset_fits,
    preset_list,
    profile_list,
    service_account_list,
    user_access,
    volume_list,
)
from inventory.models import SyncRound
from spawning.form import CUSTOM_PRESET
from spawning.models import RememberedChoices

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
    """When the inventory was last synced, and whether that is too long ago to trust."""
    last = (
        SyncRound.objects.filter(status=SyncRound.Status.COMPLETED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    if last is None:
        return {"last_synced_at": None, "stale": True}
    # Several missed rounds in a row mean the sync is not running.
    stale_after = timedelta(seconds=max(3 * float(settings.SYNC_INTERVAL), 60.0))
    return {"last_synced_at": last.isoformat(), "stale": timezone.now() - last > stale_after}


def remembered_choices_get(*, username: str, server_name: str) -> dict[str, str]:
    choices = (
        RememberedChoices.objects.filter(username=username, server_name=server_name)
        .values_list("choices", flat=True)
        .first()
    )
    return dict(choices) if isinstance(choices, dict) else {}


def options_data(*, username: str, server_name: str, groups: list[str], default_namespace: str) -> dict[str, Any]:
    """Everything the spawn form offers this user; a fixed number of queries whatever the inventory size."""
    access = user_access(username=username, groups=groups)
    return _options_data(access=access, username=username, server_name=server_name, default_namespace=default_namespace)


def _options_data(*, access: UserAccess, username: str, server_name: str, default_namespace: str) -> dict[str, Any]:
    profiles = profile_list(access=access)
    presets = preset_list()
    bounds = effective_bounds(access=access, presets=presets)
    offered_presets = [p for p in presets if preset_fits(p, bounds)]
    namespaces = namespace_list(access=access)
    namespace_names = [n.name for n in namespaces]
    accounts = service_account_list(access=access, namespaces=namespace_names)
    volumes = volume_list(access=access, namespaces=namespace_names)
    hdfs = hdfs_list(access=access)
    graphs = graph_list(access=access)

    data: dict[str, Any] = {
        "username": username,
        "server_name": server_name,
        "profiles": [
            {
                "slug": p.slug,
                "display_name": p.display_name,
                "description": p.description,
                "image": p.image,
                "default": p.default,
                "enable_hdfs": p.enable_hdfs,
                "enable_gaffer": p.enable_gaffer,
                "enable_spark": p.enable_spark,
            }
            for p in profiles
        ],
        "presets": [
            {
                "slug": p.slug,
                "display_name": p.display_name,
                "description": p.description,
                "default": p.default,
                "cpu": float(p.cpu),
                "mem": int(p.mem),
                "spark_cpu": float(p.spark_cpu),
                "spark_mem": int(p.spark_mem),
                "disk": int(p.disk),
            }
            for p in offered_presets
        ],
        "bounds": _bounds_out(bounds),
        "namespaces": [{"name": n.name, "description": n.description} for n in namespaces],
        "service_accounts": [
            {
                "id": a.key,
                "namespace": a.namespace,
                "name": a.name,
                "label": a.label,
                "description": a.description,
                "role_arn": a.role_arn,
                "role_name": a.role_name,
                "role_console_url": a.role_console_url,
            }
            for a in accounts
        ],
        "volumes": [
            {
                "id": v.key,
                "namespace": v.namespace,
                "name": v.name,
                "volume_name": v.volume_name,
                "server_name": v.owner_servername,
                "capacity": v.capacity,
            }
            for v in volumes
        ],
        "hdfs": [{"id": i.key, "label": i.label, "description": i.description, "url": i.url} for i in hdfs],
        "gaffer_graphs": [{"id": g.key, "label": g.label, "description": g.summary, "url": g.url} for g in graphs],
        "inventory": inventory_freshness(),
    }
    data["selected"] = _selected(
        data=data,
        bounds=bounds,
        remembered=remembered_choices_get(username=username, server_name=server_name),
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
