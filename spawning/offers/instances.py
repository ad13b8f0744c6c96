"""Kinds offered from a cluster-wide list (HDFS instances, Gaffer graphs): one ``<select>`` of instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework import serializers

from spawning.access import UserAccess
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation, ids
from spawning.offers.items import ItemSerializer, options_html, pick_item


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


class InstanceKind(OfferedKind):
    """A kind offered as one ``<select>`` of cluster-wide instances, shown when the profile enables it.

    Subclasses name their reply key, form field and profile feature, and say how
    their rows are read (``instances``) and who may use one (``may_use``).
    """

    reply_key: ClassVar[str]
    # Its names in the form's state: the chosen item, its <option> list, whether shown.
    form_name: ClassVar[str]
    # The profile's ``enable_<feature>`` flag, and the feature as a sentence names it.
    feature: ClassVar[str]
    feature_title: ClassVar[str]
    what: ClassVar[str]

    def instances(self, loaded: Any) -> Instances:
        return loaded

    def may_use(self, access: UserAccess, row: Any) -> bool:
        raise NotImplementedError

    def output_fields(self) -> dict[str, Out]:
        return {self.reply_key: Out(InstanceOut)}

    def offer(self, ctx: OfferContext) -> None:
        loaded = self.instances(ctx.snapshot.kinds[self.name])
        ctx.offered[self.reply_key] = [item for row, item in loaded.offers if self.may_use(ctx.access, row)]

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        return {field: ids(ctx.offered[self.reply_key]) for field in self.choice_fields}

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        items = data.get(self.reply_key) or []
        chosen = pick_item(items, "id", selected.get(self.choice_fields[0]), fallback_to_first=False)
        profile = state.get("chosen_profile")
        return {
            self.form_name: chosen,
            f"{self.form_name}_options": options_html(items, chosen),
            f"show_{self.feature}": bool(profile and profile.get(f"enable_{self.feature}")),
        }

    def chosen(self, v: Validation) -> Any | None:
        """The instance chosen and allowed, or None (nothing chosen, or refused and recorded)."""
        field = self.choice_fields[0]
        key = v.option(field)
        v.choices[field] = key
        if not key or v.profile is None:
            return None
        if not getattr(v.profile, f"enable_{self.feature}"):
            v.refuse(field, f"The profile '{v.profile.slug}' does not enable {self.feature_title}.")
            return None
        loaded = self.instances(v.snapshot.kinds[self.name])
        return v.pick(field, self.what, key, loaded.by_key, lambda row: self.may_use(v.access, row))
