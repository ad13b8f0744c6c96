"""What lives in a namespace (service accounts, volumes): loaded by namespace, offered in the user's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


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


def lean(queryset: Any) -> Any:
    # Labels and annotations can be large and nothing offered reads them.
    return queryset.defer("labels", "annotations")
