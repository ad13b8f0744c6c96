"""Helpers the offered kinds share: serializing their items, and picking the initial choice of a list."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from rest_framework import serializers


class ItemSerializer(serializers.Serializer):
    """An offered item (a frozen dataclass from the snapshot), serialized once per distinct item.

    The same items come back on every /options request of a generation. At the
    bench's inventory (bench/portal_bench.py; a user offered 117 items) serializing
    the /options data took 1.4 ms a request through DRF alone and 0.6 ms with each
    item's dict kept (in-process medians, 2026-12-01), of a request of about 3 ms.
    Safe because the items are frozen and the dicts are never changed after (the
    form reads them, the renderer writes them out); tests/test_options_snapshot.py
    checks a changed item is sent changed.
    """

    def to_representation(self, instance: Any) -> Any:
        return _wire(type(self), instance)

    def fresh_representation(self, instance: Any) -> Any:
        return super().to_representation(instance)


@lru_cache(maxsize=16384)
def _wire(serializer_class: type[ItemSerializer], item: Any) -> dict[str, Any]:
    return dict(serializer_class().fresh_representation(item))


def lean(queryset: Any) -> Any:
    """Rows without their labels and annotations: they can be large and nothing offered reads them."""
    return queryset.defer("labels", "annotations")


def pick_item(
    items: list[dict[str, Any]], key: str, wanted: Any, *, fallback_to_first: bool = True
) -> dict[str, Any] | None:
    """The item whose ``key`` is ``wanted``; else the default one; else (optionally) the first."""
    wanted = text(wanted)
    for item in items:
        if wanted and item.get(key) == wanted:
            return item
    for item in items:
        if item.get("default"):
            return item
    return items[0] if items and fallback_to_first else None


def options_html(items: list[dict[str, Any]], chosen: dict[str, Any] | None) -> SafeString:
    """The ``<option>`` list of a long ``<select>`` (HDFS, graphs), as a template loop drew it.

    Built here because these lists are long (one entry per instance in the
    cluster): at the bench's inventory, drawing the form took 1.6 ms with each
    entry escaped anew and 1.05 ms with ``_option`` cached (in-process medians,
    2026-12-01); a template loop cost more still.
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


def text(value: Any) -> str:
    # Remembered choices may come back as the hub's single-element lists.
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return "" if value is None else str(value)


def number(value: Any) -> Decimal | None:
    raw = text(value).strip()
    if not raw:
        return None
    try:
        parsed = Decimal(raw)
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None
