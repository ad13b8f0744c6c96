"""Renders the spawn form that /options returns as ``html``.

The form is drawn in full on the server, in the state the user's remembered
(or default) choices describe, so it is usable before its script runs. The
script then only keeps it consistent as choices change (sections shown for the
chosen profile, accounts and volumes for the chosen namespace, presets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

CUSTOM_PRESET = "custom"

# Used when the data has no bounds for a field; the same as the portal's built-in defaults.
DEFAULT_BOUNDS: dict[str, dict[str, float | int]] = {
    "cpu": {"min": 0.1, "max": 4, "default": 0.25},
    "mem": {"min": 256, "max": 16384, "default": 512},
    "spark_cpu": {"min": 0.1, "max": 4, "default": 1},
    "spark_mem": {"min": 256, "max": 16384, "default": 512},
    "disk": {"min": 1, "max": 100, "default": 10},
}


@dataclass(frozen=True)
class NumberField:
    """One bounded number input: its form name, the preset key it follows, and what it shows."""

    name: str
    key: str
    label: str
    unit: str
    step: str
    value: str
    min: str
    max: str

    @property
    def html_id(self) -> str:
        return f"op-{self.name.replace('_', '-')}"


_NUMBER_FIELDS = (
    ("resources_cpu", "cpu", "CPU", "vCPU", "any"),
    ("resources_mem", "mem", "Memory", "MB", "1"),
    ("spark_cpu", "spark_cpu", "Spark executor CPU", "vCPU", "any"),
    ("spark_mem", "spark_mem", "Spark executor memory", "MB", "1"),
    ("resources_hdd", "disk", "Size", "GB", "1"),
)


def render_options_form(data: dict[str, Any]) -> str:
    """The form's HTML for one user; every string in ``data`` is escaped by the template."""
    return render_to_string("spawning/options_form.html", {"data": data, "form": form_state(data)})


def form_state(data: dict[str, Any]) -> dict[str, Any]:
    """What the template needs beyond ``data``: the initial choices, resolved against what is offered."""
    selected: dict[str, Any] = data.get("selected") or {}
    profiles: list[dict[str, Any]] = data.get("profiles") or []
    presets: list[dict[str, Any]] = data.get("presets") or []
    namespaces: list[dict[str, Any]] = data.get("namespaces") or []

    profile = _pick(profiles, "slug", selected.get("profile"))
    preset = _pick(presets, "slug", selected.get("resource_preset"), fallback_to_first=False)
    if selected.get("resource_preset") == CUSTOM_PRESET or (preset and not _matches(preset, selected)):
        preset = None
    namespace = _pick(namespaces, "name", selected.get("k8s_namespace"))
    namespace_name = namespace["name"] if namespace else ""

    service_accounts = [sa for sa in data.get("service_accounts") or [] if sa.get("namespace") == namespace_name]
    volumes = [v for v in data.get("volumes") or [] if v.get("namespace") == namespace_name]
    service_account = _pick(service_accounts, "id", selected.get("k8s_service_account"), fallback_to_first=False)
    volume = _pick(volumes, "id", selected.get("volume"), fallback_to_first=False)
    hdfs = _pick(data.get("hdfs") or [], "id", selected.get("hdfs"), fallback_to_first=False)
    graph = _pick(data.get("gaffer_graphs") or [], "id", selected.get("gaffer_graph"), fallback_to_first=False)

    bounds = data.get("bounds") or {}
    numbers: dict[str, NumberField] = {}
    for name, key, label, unit, step in _NUMBER_FIELDS:
        field_bounds = {**DEFAULT_BOUNDS[key], **(bounds.get(key) or {})}
        value = selected.get(name)
        if _number(value) is None:
            value = preset[key] if preset and key in preset else field_bounds["default"]
        numbers[name] = NumberField(
            name=name,
            key=key,
            label=label,
            unit=unit,
            step=step,
            value=_plain(value),
            min=_plain(field_bounds["min"]),
            max=_plain(field_bounds["max"]),
        )

    return {
        "profile": profile["slug"] if profile else "",
        "preset": preset["slug"] if preset else CUSTOM_PRESET,
        "namespace": namespace_name,
        "service_accounts": service_accounts,
        "service_account": service_account,
        "volumes": volumes,
        "volume": volume["id"] if volume else "",
        "volume_name": _text(selected.get("volume_name")) or data.get("server_name") or "default",
        "hdfs": hdfs,
        "graph": graph,
        "hdfs_options": _options_html(data.get("hdfs") or [], hdfs),
        "graph_options": _options_html(data.get("gaffer_graphs") or [], graph),
        "show_hdfs": bool(profile and profile.get("enable_hdfs")),
        "show_gaffer": bool(profile and profile.get("enable_gaffer")),
        "show_spark": bool(profile and profile.get("enable_spark")),
        "last_synced_at": _when((data.get("inventory") or {}).get("last_synced_at")),
        "cpu": numbers["resources_cpu"],
        "mem": numbers["resources_mem"],
        "spark_cpu": numbers["spark_cpu"],
        "spark_mem": numbers["spark_mem"],
        "disk": numbers["resources_hdd"],
    }


def _options_html(items: list[dict[str, Any]], chosen: dict[str, Any] | None) -> SafeString:
    """The ``<option>`` list of an HDFS or graph ``<select>``, as the template's loop drew it.

    Built here because these lists are long (one entry per instance in the
    cluster) and a template loop cost most of a request's rendering time.
    """
    chosen_id = chosen.get("id") if chosen else None
    return mark_safe(  # noqa: S308 -- every value is escaped in _option
        "".join(_option(item.get("id", ""), item.get("label", ""), item.get("id") == chosen_id) for item in items)
    )


@lru_cache(maxsize=8192)
def _option(value: Any, label: Any, selected: bool) -> str:
    """One entry; the same items come back on every request, so each is escaped once."""
    mark = " selected" if selected else ""
    return f'\n        <option value="{conditional_escape(value)}"{mark}>{conditional_escape(label)}</option>\n      '


def _pick(
    items: list[dict[str, Any]], key: str, wanted: Any, *, fallback_to_first: bool = True
) -> dict[str, Any] | None:
    """The item whose ``key`` is ``wanted``; else the default one; else (optionally) the first."""
    wanted = _text(wanted)
    for item in items:
        if wanted and item.get(key) == wanted:
            return item
    for item in items:
        if item.get("default"):
            return item
    return items[0] if items and fallback_to_first else None


def _matches(preset: dict[str, Any], selected: dict[str, Any]) -> bool:
    """Whether the remembered numbers are the preset's (a field not remembered matches)."""
    for name, key, *_ in _NUMBER_FIELDS:
        chosen = _number(selected.get(name))
        if chosen is not None and key in preset and chosen != _number(preset[key]):
            return False
    return True


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _text(value: Any) -> str:
    # Remembered choices may come back as the hub's single-element lists.
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return "" if value is None else str(value)


def _number(value: Any) -> Decimal | None:
    text = _text(value).strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _plain(value: Any) -> str:
    """A number as an input's value: ``1.0`` → ``1``, ``0.250`` → ``0.25``, no exponent."""
    number = _number(value)
    if number is None:
        return ""
    return format(number.normalize(), "f")
