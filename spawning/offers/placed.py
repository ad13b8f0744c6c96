"""What lives in a namespace (service accounts, volumes): loaded by namespace, offered in the user's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework import serializers

from spawning.access import UserAccess
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation, ids
from spawning.offers.items import lean, pick_item


@dataclass(frozen=True)
class Placed:
    """Offered rows (model, item) by namespace, in the inventory's order, and the models by key."""

    by_namespace: Mapping[str, tuple[tuple[int, Any, Any], ...]]
    by_key: Mapping[str, Any]

    @classmethod
    def of(cls, rows: Iterable[Any], item: Callable[[Any], Any]) -> Placed:
        grouped: dict[str, list[tuple[int, Any, Any]]] = defaultdict(list)
        by_key = {}
        for position, row in enumerate(rows):
            grouped[row.namespace].append((position, row, item(row)))
            by_key[row.key] = row
        return cls(by_namespace={ns: tuple(found) for ns, found in grouped.items()}, by_key=by_key)

    def offered(self, namespaces: list[str], allowed: Callable[[Any], bool]) -> list[Any]:
        """The items in these namespaces that ``allowed`` lets through, in the inventory's order."""
        found = [entry for name in dict.fromkeys(namespaces) for entry in self.by_namespace.get(name, ())]
        found.sort(key=lambda entry: entry[0])
        return [item for _, row, item in found if allowed(row)]


class PlacedKind(OfferedKind):
    """A kind whose items live in a namespace: offered in the user's namespaces, chosen in the notebook's.

    Subclasses name their reply key and item serializer, read their rows
    (``rows``, ``item``) and say who may use one (``may_use``).
    """

    reply_key: ClassVar[str]
    serializer: ClassVar[type[serializers.Serializer]]
    what: ClassVar[str]

    def rows(self) -> Any:
        raise NotImplementedError

    def item(self, row: Any) -> Any:
        raise NotImplementedError

    def may_use(self, access: UserAccess, row: Any, *, namespaces: list[str]) -> bool:
        raise NotImplementedError

    def load(self) -> Placed:
        return Placed.of(lean(self.rows()), self.item)

    def output_fields(self) -> dict[str, Out]:
        return {self.reply_key: Out(self.serializer)}

    def offer(self, ctx: OfferContext) -> None:
        loaded: Placed = ctx.snapshot.kinds[self.name]
        ctx.offered[self.reply_key] = loaded.offered(
            ctx.namespaces, lambda row: self.may_use(ctx.access, row, namespaces=ctx.namespaces)
        )

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        # One from another namespace would be a choice the form cannot show.
        chosen = selected.get("k8s_namespace")
        return {self.choice_fields[0]: ids(i for i in ctx.offered[self.reply_key] if i.namespace == chosen)}

    def in_namespace(
        self, data: Mapping[str, Any], selected: Mapping[str, Any], state: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The serialized items in the form's namespace, and the one chosen among them."""
        items = [i for i in data.get(self.reply_key) or [] if i.get("namespace") == state["namespace"]]
        return items, pick_item(items, "id", selected.get(self.choice_fields[0]), fallback_to_first=False)

    def chosen(self, v: Validation) -> Any | None:
        """The row chosen, allowed and in the notebook's namespace, or None (none chosen, or refused and recorded)."""
        field = self.choice_fields[0]
        key = v.option(field)
        v.choices[field] = key
        if not key or v.namespace is None:
            return None
        loaded: Placed = v.snapshot.kinds[self.name]
        allowed = v.allowed_namespaces
        row = v.pick(field, self.what, key, loaded.by_key, lambda r: self.may_use(v.access, r, namespaces=allowed))
        if row is not None and row.namespace != v.namespace:
            v.refuse(field, f"The {self.what} '{key}' is not in the namespace '{v.namespace}'.")
            return None
        return row
