"""Namespaces: where the notebook runs, from the operators' namespace options that exist in the cluster."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rest_framework import serializers

from inventory.models import Namespace, NamespaceOption
from spawning.access import namespace_choices
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation
from spawning.offers.items import ItemSerializer, pick_item
from spawning.plan import SpawnPlan
from spawning.replies import ReplyBuilder

if TYPE_CHECKING:
    from spawning.snapshot import InventorySnapshot


@dataclass(frozen=True)
class NamespaceItem:
    name: str
    description: str


class NamespaceOut(ItemSerializer):
    name = serializers.CharField()
    description = serializers.CharField()


@dataclass(frozen=True)
class Namespaces:
    options: tuple[NamespaceOption, ...]
    present: frozenset[str]


def allowed_namespaces(snapshot: InventorySnapshot, access: Any) -> list[NamespaceItem]:
    loaded: Namespaces = snapshot.kinds[KIND.name]
    choices = namespace_choices(access=access, options=loaded.options, present=loaded.present)
    return [NamespaceItem(name=n.name, description=n.description) for n in choices]


class NamespaceKind(OfferedKind):
    name = "namespace"
    template = "spawning/offers/namespace.html"
    choice_fields = ("k8s_namespace",)

    def load(self) -> Namespaces:
        return Namespaces(
            options=tuple(NamespaceOption.objects.all()),
            present=frozenset(Namespace.objects.filter(missing_since__isnull=True).values_list("name", flat=True)),
        )

    def output_fields(self) -> dict[str, Out]:
        return {"namespaces": Out(NamespaceOut)}

    def offer(self, ctx: OfferContext) -> None:
        items = allowed_namespaces(ctx.snapshot, ctx.access)
        ctx.namespaces = [n.name for n in items]
        ctx.offered["namespaces"] = items

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        return {"k8s_namespace": set(ctx.namespaces)}

    def defaults(self, ctx: OfferContext) -> dict[str, str]:
        if ctx.default_namespace in ctx.namespaces:
            return {"k8s_namespace": ctx.default_namespace}
        return {"k8s_namespace": ctx.namespaces[0] if ctx.namespaces else ""}

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        namespace = pick_item(data.get("namespaces") or [], "name", selected.get("k8s_namespace"))
        state["namespace"] = namespace["name"] if namespace else ""
        return {"namespace": state["namespace"]}

    def validate(self, v: Validation) -> None:
        v.allowed_namespaces = [n.name for n in allowed_namespaces(v.snapshot, v.access)]
        namespace = v.option("k8s_namespace") or v.default_namespace
        if not namespace:
            v.refuse("k8s_namespace", "Choose a namespace.")
        elif namespace not in v.allowed_namespaces:
            v.refuse("k8s_namespace", f"You may not use the namespace '{namespace[:63]}'.")
        else:
            v.namespace = namespace
            v.choices["k8s_namespace"] = namespace
            v.plan["namespace"] = namespace

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        reply.namespace = plan.namespace


KIND = NamespaceKind()
