"""Reads for the hub API: the data the spawn form is drawn from."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from rest_framework.renderers import JSONRenderer

from inventory import freshness
from inventory.generation import GENERATION_PK
from inventory.models import InventoryGeneration, SyncRound
from spawning.models import RememberedChoices
from spawning.offers import KINDS, NUMBER_FIELDS
from spawning.offers.base import OfferContext
from spawning.offers.resources import user_bounds
from spawning.replies import Freshness, OptionsData
from spawning.reply_cache import CachedReply, ReplyCache
from spawning.snapshot import InventorySnapshot, inventory_snapshot

logger = logging.getLogger(__name__)

# The renderer DRF would use for the reply (settings.REST_FRAMEWORK): the same bytes.
_JSON = JSONRenderer()


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


_REPLIES = ReplyCache(settings.OPTIONS_REPLY_CACHE_BYTES)


def options_document(*, username: str, server_name: str, groups: list[str], default_namespace: str) -> CachedReply:
    """The /options reply as sent (JSON with the form's HTML), from this worker's reply cache when it can be.

    The key holds everything the reply is drawn from (spawning/reply_cache.py): the
    snapshot it came from, the request, the remembered choices and the freshness.
    """
    from spawning.form import render_options_form
    from spawning.serializers import options_output

    state = request_state(username=username, server_name=server_name)
    snapshot = inventory_snapshot(generation=state.generation, previous_while_rebuilding=True)
    key = (
        id(snapshot),
        snapshot.built_at,
        username,
        server_name,
        tuple(groups),
        default_namespace,
        json.dumps(state.remembered, sort_keys=True),
        state.freshness["last_synced_at"],
        state.freshness["stale"],
        tuple(kind.volatile_key(snapshot) for kind in KINDS),
    )
    cacheable = state.generation is not None
    if cacheable and (hit := _REPLIES.get(key)) is not None:
        return hit
    data = options_output(
        options_reply(
            username=username,
            server_name=server_name,
            groups=groups,
            default_namespace=default_namespace,
            read=(state, snapshot),
        )
    )
    data["html"] = render_options_form(data)
    body = _JSON.render(data)
    return _REPLIES.put(key, body) if cacheable else CachedReply(body)


def forget_replies() -> None:
    """Drop every kept /options reply (tests that change what a reply is drawn from behind the key's back)."""
    _REPLIES.clear()


def options_data(*, username: str, server_name: str, groups: list[str], default_namespace: str) -> dict[str, Any]:
    """The /options data as sent (without the form's HTML), serialized through its output serializer."""
    from spawning.serializers import options_output

    reply = options_reply(
        username=username, server_name=server_name, groups=groups, default_namespace=default_namespace
    )
    return options_output(reply)


def options_reply(
    *,
    username: str,
    server_name: str,
    groups: list[str],
    default_namespace: str,
    read: tuple[RequestState, InventorySnapshot] | None = None,
) -> OptionsData:
    """Everything the spawn form offers this user; a fixed number of queries whatever the inventory size.

    What does not depend on the user comes from the per-process inventory snapshot
    (one query while the inventory is unchanged); each offered kind applies the
    access rules with the predicates /prespawn uses. ``read``: the request's state and
    snapshot, when the caller has read them already.
    """
    if read is None:
        state = request_state(username=username, server_name=server_name)
        read = (state, inventory_snapshot(generation=state.generation))
    state, snapshot = read
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


def warm_up() -> None:
    """Read the inventory and draw a form once, so a new worker's first /options is as fast as any other.

    Called by gunicorn before the worker accepts requests (gunicorn.conf.py). Nothing is
    kept in the reply cache; a database that is not there yet leaves the work to the
    first request.
    """
    from spawning.form import render_options_form
    from spawning.serializers import options_output

    started = time.monotonic()
    try:
        data = options_output(options_reply(username="", server_name="", groups=[], default_namespace=""))
        render_options_form(data)
    except DatabaseError as exc:
        logger.warning("warm-up skipped, the database is unavailable: %s", exc)
        return
    logger.info("warmed up in %.0f ms", (time.monotonic() - started) * 1000)
