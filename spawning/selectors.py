"""Reads for the hub API: the data the spawn form is drawn from."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection

from inventory import freshness
from inventory.generation import GENERATION_PK
from inventory.models import InventoryGeneration, SyncRound
from spawning.models import RememberedChoices
from spawning.offers import KINDS, NUMBER_FIELDS
from spawning.offers.base import OfferContext
from spawning.offers.resources import user_bounds
from spawning.replies import Freshness, OptionsData
from spawning.snapshot import inventory_snapshot


def inventory_freshness() -> dict[str, Any]:
    """When the inventory was last synced, and whether to distrust it (``inventory.freshness`` has the rule)."""
    return _freshness_out(freshness.inventory_freshness())


def _freshness_out(fresh: freshness.Freshness) -> dict[str, Any]:
    synced = fresh.last_synced_at
    return {"last_synced_at": synced.isoformat() if synced else None, "stale": fresh.stale}


@dataclass(frozen=True)
class RequestState:
    """What /options reads afresh on every request, in one round trip."""

    generation: tuple[int, uuid.UUID] | None
    freshness: dict[str, Any]
    remembered: dict[str, str]


def request_state(*, username: str, server_name: str) -> RequestState:
    """The inventory generation, the sync's freshness and the remembered choices, in one query.

    Plain SQL because this runs on every /options call: compiling three ORM
    queries cost more than running them. The same filters as
    ``inventory.freshness.inventory_freshness``, judged by the same rule, and a
    separate read of the remembered choices. Without the ORM's converters each
    value comes back as the driver gives it, which differs between PostgreSQL
    and SQLite; the suite runs on both.
    """
    generation_table = InventoryGeneration._meta.db_table
    rounds = SyncRound._meta.db_table
    choices_table = RememberedChoices._meta.db_table
    sql = (
        f"SELECT (SELECT number FROM {generation_table} WHERE id = %s),"  # noqa: S608
        f" (SELECT token FROM {generation_table} WHERE id = %s),"
        f" (SELECT finished_at FROM {rounds} WHERE status = %s AND finished_at IS NOT NULL"
        "   ORDER BY started_at DESC LIMIT 1),"
        f" (SELECT status FROM {rounds} WHERE kind = %s AND status <> %s ORDER BY started_at DESC LIMIT 1),"
        f" (SELECT choices FROM {choices_table} WHERE username = %s AND server_name = %s LIMIT 1)"
    )
    params: list[int | str] = [
        GENERATION_PK,
        GENERATION_PK,
        SyncRound.Status.COMPLETED.value,
        SyncRound.Kind.FULL.value,
        SyncRound.Status.RUNNING.value,
        username,
        server_name,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        number, token, last_completed, full_status, choices = cursor.fetchone()
    if isinstance(choices, str | bytes):
        choices = json.loads(choices)
    if isinstance(token, str):
        token = uuid.UUID(token)
    return RequestState(
        generation=(number, token) if number is not None else None,
        freshness=_freshness_out(freshness.freshness_from(freshness.as_aware(last_completed), full_status)),
        remembered=dict(choices) if isinstance(choices, dict) else {},
    )


def options_data(*, username: str, server_name: str, groups: list[str], default_namespace: str) -> dict[str, Any]:
    """The /options data as sent (without the form's HTML), serialized through its output serializer."""
    from spawning.serializers import options_output

    reply = options_reply(
        username=username, server_name=server_name, groups=groups, default_namespace=default_namespace
    )
    return options_output(reply)


def options_reply(*, username: str, server_name: str, groups: list[str], default_namespace: str) -> OptionsData:
    """Everything the spawn form offers this user; a fixed number of queries whatever the inventory size.

    What does not depend on the user comes from the per-process inventory snapshot
    (one query while the inventory is unchanged); each offered kind applies the
    access rules with the predicates /prespawn uses.
    """
    state = request_state(username=username, server_name=server_name)
    snapshot = inventory_snapshot(generation=state.generation)
    access = snapshot.rules.for_user(username=username, groups=groups)
    ctx = OfferContext(
        snapshot=snapshot,
        access=access,
        bounds=user_bounds(snapshot, access),
        username=username,
        server_name=server_name,
        default_namespace=default_namespace,
    )
    for kind in KINDS:
        kind.offer(ctx)
    selected: dict[str, str] = {}
    for kind in KINDS:
        kind.preselect(ctx, state.remembered, selected)
    # A remembered number is kept while it lies within this user's bounds.
    for field in NUMBER_FIELDS:
        bound = ctx.bounds[field.key]
        value = state.remembered.get(field.name)
        selected[field.name] = str(field.wire(bound.default))
        try:
            number = Decimal(str(value))
        except (ArithmeticError, ValueError):
            continue
        if value is not None and number.is_finite() and bound.contains(number):
            selected[field.name] = str(value)
    freshness = state.freshness
    return OptionsData(
        username=username,
        server_name=server_name,
        offered=ctx.offered,
        selected=selected,
        inventory=Freshness(last_synced_at=freshness["last_synced_at"], stale=freshness["stale"]),
        notices=tuple(ctx.notices),
    )
