"""Kinds offered from a cluster-wide list (HDFS instances, Gaffer graphs): one ``<select>`` of instances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from spawning.offers.items import ItemSerializer


@dataclass(frozen=True)
class InstanceItem:
    id: str
    label: str
    description: str
    url: str


class InstanceOut(ItemSerializer):
    id = serializers.CharField()
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Field.label at run time; the stubs cannot see that.
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()
    url = serializers.CharField()


@dataclass(frozen=True)
class Instances:
    """Offerable rows with their items, in the inventory's order, and the rows by key."""

    offers: tuple[tuple[Any, InstanceItem], ...]
    by_key: dict[str, Any]

    @classmethod
    def of(cls, rows: list[Any], *, description: str) -> Instances:
        offers = tuple(
            (row, InstanceItem(id=row.key, label=row.label, description=getattr(row, description), url=row.url))
            for row in rows
        )
        return cls(offers=offers, by_key={row.key: row for row in rows})
