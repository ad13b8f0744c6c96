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

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from inventory.generation import current_inventory_generation
from spawning.access import AccessRules
from spawning.offers import KINDS

logger = logging.getLogger(__name__)

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
_rebuilding = False


def inventory_snapshot(
    *, generation: tuple[int, uuid.UUID] | None, previous_while_rebuilding: bool = False
) -> InventorySnapshot:
    """The snapshot for ``generation``, which the caller read *before* calling (no query when it is current).

    With ``previous_while_rebuilding`` (the form, never validation), a snapshot of an
    older generation is returned while a background thread builds the current one,
    so no request waits on a rebuild (settings.OPTIONS_PREVIOUS_WHILE_REBUILDING).
    """
    snapshot = _current
    if _is_current(snapshot, generation):
        assert snapshot is not None
        return snapshot
    # However old the previous snapshot (a worker idle for a while), it is shown only to the
    # requests that arrive while its successor is being built.
    if (
        previous_while_rebuilding
        and snapshot is not None
        and generation is not None
        and settings.OPTIONS_PREVIOUS_WHILE_REBUILDING
    ):
        _rebuild_in_background(generation)
        return snapshot
    return _keep(build_snapshot(generation))


def _is_current(snapshot: InventorySnapshot | None, generation: tuple[int, uuid.UUID] | None) -> bool:
    return (
        snapshot is not None
        # Never bumped (a fresh or flushed database): nothing tells us when to rebuild.
        and generation is not None
        and snapshot.generation == generation
        and time.monotonic() - snapshot.built_at < MAX_AGE_SECONDS
    )


def _keep(snapshot: InventorySnapshot) -> InventorySnapshot:
    """Make ``snapshot`` the current one unless a build that started later already is."""
    global _current
    with _lock:
        if _current is None or _current.built_at <= snapshot.built_at:
            _current = snapshot
    return snapshot


def _rebuild_in_background(generation: tuple[int, uuid.UUID]) -> None:
    global _rebuilding
    with _lock:
        if _rebuilding:
            return
        _rebuilding = True
    threading.Thread(target=_rebuild, args=(generation,), name="snapshot-rebuild", daemon=True).start()


def _rebuild(generation: tuple[int, uuid.UUID]) -> None:
    global _rebuilding
    try:
        _keep(build_snapshot(generation))
    except Exception:
        # The next request that finds the snapshot behind its generation starts another.
        logger.exception("rebuilding the inventory snapshot failed")
    finally:
        connection.close()
        with _lock:
            _rebuilding = False


def wait_for_rebuild(timeout: float = 10.0) -> None:
    """Block until no background rebuild is running (for tests)."""
    deadline = time.monotonic() + timeout
    while _rebuilding and time.monotonic() < deadline:
        time.sleep(0.005)


def current_snapshot() -> InventorySnapshot:
    """The snapshot for the inventory as it is now: one query when nothing changed."""
    return inventory_snapshot(generation=current_inventory_generation())


def forget_snapshot() -> None:
    """Drop the cached snapshot, so the next request reads the inventory afresh."""
    global _current
    with _lock:
        _current = None
