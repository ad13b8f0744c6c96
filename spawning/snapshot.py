"""A per-process snapshot of the inventory the spawn form is drawn from.

Nothing here depends on the user: each offered kind's rows (spawning/offers)
are read once per inventory generation (see inventory/generation.py) and each
/options request filters them in Python with the same predicates /prespawn
uses (spawning/access.py), so the form and validation can never disagree.
Kept because it matters: it took /options from 16 queries to 1, and from
about 50 to about 290 req/s for one client (docs/benchmarks.md, 2026-11-30). The generation is read before
the rows, so a snapshot is never older than the generation it is kept under.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inventory.generation import current_inventory_generation
from spawning.access import AccessRules
from spawning.offers import KINDS

# Every write the form depends on changes the generation; the age limit only
# bounds the harm of a write path that someone adds later and forgets to bump.
MAX_AGE_SECONDS = 30.0


@dataclass(frozen=True)
class InventorySnapshot:
    """Everything /options and /prespawn read that is the same for every user, in the form's order."""

    generation: tuple[int, uuid.UUID] | None
    built_at: float
    rules: AccessRules
    # Offered kind name → what its ``load`` read (spawning/offers).
    kinds: Mapping[str, Any]


def build_snapshot(generation: tuple[int, uuid.UUID] | None) -> InventorySnapshot:
    """Read every user-independent row the form and validation need: a fixed number of queries."""
    return InventorySnapshot(
        generation=generation,
        built_at=time.monotonic(),
        rules=AccessRules.load(),
        kinds={kind.name: kind.load() for kind in KINDS},
    )


_lock = threading.Lock()
_current: InventorySnapshot | None = None


def inventory_snapshot(*, generation: tuple[int, uuid.UUID] | None) -> InventorySnapshot:
    """The snapshot for ``generation``, which the caller read *before* calling (no query when it is current)."""
    global _current
    snapshot = _current
    if (
        snapshot is not None
        # Never bumped (a fresh or flushed database): nothing tells us when to rebuild.
        and generation is not None
        and snapshot.generation == generation
        and time.monotonic() - snapshot.built_at < MAX_AGE_SECONDS
    ):
        return snapshot
    snapshot = build_snapshot(generation)
    with _lock:
        _current = snapshot
    return snapshot


def current_snapshot() -> InventorySnapshot:
    """The snapshot for the inventory as it is now: one query when nothing changed."""
    return inventory_snapshot(generation=current_inventory_generation())


def forget_snapshot() -> None:
    """Drop the cached snapshot, so the next request reads the inventory afresh."""
    global _current
    with _lock:
        _current = None
