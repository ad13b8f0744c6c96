"""Writes for the hub API: validate a spawn, provision it, clean up after it, and record each.

Validation runs completely before anything is made in the cluster, so a
refused choice never leaves a half-made set of objects behind.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from inventory.models import GafferGraph
from kube.client import KubeError
from spawning import cleanup, provisioning
from spawning.access import UserAccess
from spawning.errors import ChoiceRefused
from spawning.locks import server_lock
from spawning.models import RememberedChoices, SpawnRecord
from spawning.offers import KINDS, NUMBER_FIELDS
from spawning.offers.base import NumberField, Validation, plain
from spawning.offers.resources import user_bounds
from spawning.plan import SpawnPlan
from spawning.serializers import prespawn_output
from spawning.snapshot import InventorySnapshot, current_snapshot

logger = logging.getLogger(__name__)

STORED_FIELDS = 50
STORED_VALUE_LENGTH = 200
OMITTED_KEY = "…"


@dataclass(frozen=True)
class ValidatedSpawn:
    """A plan, plus the normalised form values to remember and record."""

    plan: SpawnPlan
    choices: dict[str, str]


def _option(options: Mapping[str, str], field: str) -> str:
    value = options.get(field, "")
    return value if isinstance(value, str) else str(value)


def _validate(
    *,
    snapshot: InventorySnapshot,
    access: UserAccess,
    username: str,
    server_name: str,
    pod_name: str,
    default_namespace: str,
    profile: str,
    user_options: Mapping[str, str],
) -> ValidatedSpawn:
    """Every offered kind's checks, in form order; every refused field is reported. Nothing here touches the cluster.

    Everything is read from ``snapshot``, the inventory the form is drawn from, and
    ``access`` must come from its rules, so what is offered and what is accepted agree.
    """
    v = Validation(
        snapshot=snapshot,
        access=access,
        bounds=user_bounds(snapshot, access),
        options=user_options,
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        default_namespace=default_namespace,
        requested_profile=profile,
    )
    if not pod_name:
        v.refuse("pod_name", "The hub must name the notebook's pod.")
    for kind in KINDS:
        kind.validate(v)
    for kind in KINDS:
        kind.validate_together(v)
    if v.refusals:
        raise ChoiceRefused.of(v.refusals)
    plan = SpawnPlan(
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        groups=tuple(sorted(access.groups)),
        **v.plan,
    )
    choices = {**v.choices, **{field.name: plain(value) for field, value in _numbers(v)}}
    return ValidatedSpawn(plan=plan, choices=choices)


def _numbers(v: Validation) -> list[tuple[NumberField, Decimal]]:
    return [(field, v.numbers[field.name]) for field in NUMBER_FIELDS]


def prespawn_validate(
    *,
    username: str,
    server_name: str,
    pod_name: str,
    default_namespace: str,
    profile: str,
    user_options: Mapping[str, str],
    groups: list[str] | tuple[str, ...] = (),
) -> SpawnPlan:
    """Check every choice against what this user may use; raises ChoiceRefused(field, reason)."""
    return _validated(
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        default_namespace=default_namespace,
        profile=profile,
        user_options=user_options,
        groups=groups,
    ).plan


def _validated(
    *,
    username: str,
    server_name: str,
    pod_name: str,
    default_namespace: str,
    profile: str,
    user_options: Mapping[str, str],
    groups: list[str] | tuple[str, ...],
) -> ValidatedSpawn:
    # One query while the inventory is unchanged; every operator's edit changes the generation.
    snapshot = current_snapshot()
    return _validate(
        snapshot=snapshot,
        access=snapshot.rules.for_user(username=username, groups=groups),
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        default_namespace=default_namespace,
        profile=profile,
        user_options=user_options,
    )


def _finish(record: SpawnRecord, result: str, *, started: float, message: str = "") -> None:
    """Save how the call ended. Never raises: by now the answer is decided, and for a spawn
    whose objects were applied a lost record must not turn success into failure."""
    record.result = result
    record.message = message
    record.duration_ms = _elapsed_ms(started)
    for attempt in (1, 2):
        try:
            record.save()
            return
        except DatabaseError as exc:
            # A connection killed since the last query: once more on a fresh one, where
            # closing it is allowed (outside a transaction).
            if attempt == 1 and isinstance(exc, OperationalError | InterfaceError) and not connection.in_atomic_block:
                connection.close()
                continue
            # An error when the cluster was changed and nothing says so; a refusal or failure changed nothing.
            done = result in (SpawnRecord.Result.PROVISIONED, SpawnRecord.Result.STOPPED)
            logger.log(
                logging.ERROR if done else logging.WARNING,
                "the %s record of %s/%s could not be saved: %s",
                result,
                record.username,
                record.server_name,
                exc,
            )
            return


def _stored_input(user_options: Mapping[str, str]) -> dict[str, str]:
    """What a record keeps of the submitted form: enough to see what was asked, never megabytes."""
    stored = {key: value[:STORED_VALUE_LENGTH] for key, value in list(user_options.items())[:STORED_FIELDS]}
    if len(user_options) > STORED_FIELDS:
        stored[OMITTED_KEY] = f"{len(user_options) - STORED_FIELDS} more fields not stored"
    return stored


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def _object_list(objects: list[Any]) -> list[dict[str, str]]:
    return [asdict(obj) for obj in objects]


class History(StrEnum):
    """What the database says about earlier spawns of a server, as far as cleanup is concerned."""

    NEVER = "never"  # no record and no remembered choices: never spawned from this database
    TRUSTED = "trusted"  # the latest record names everything of ours there is
    UNTRUSTED = "untrusted"  # something since may have left objects no record names


def _previous_objects(username: str, server_name: str) -> tuple[list[provisioning.ObjectRef], History]:
    """What the last successful spawn of this server made, as recorded, and whether that is the whole story.

    It is when the server's latest record that changed the cluster is that spawn, or a
    /poststop (which removed everything): then nothing since can have left objects no
    record names. After a failed call (whose undo may itself have failed) it is not.
    With no record at all, the remembered choices tell a server never spawned here
    (nothing of ours can exist) from one whose records were pruned by age while its
    objects may live on; the choices are kept when records are pruned.
    """
    latest = (
        SpawnRecord.objects.filter(username=username, server_name=server_name)
        .exclude(result=SpawnRecord.Result.REFUSED)
        .order_by("-created_at", "-id")
        .values_list("result", "cluster_objects")
        .first()
    )
    if latest is None:
        remembered = RememberedChoices.objects.filter(username=username, server_name=server_name).exists()
        return [], History.UNTRUSTED if remembered else History.NEVER
    result, objects = latest
    if result == SpawnRecord.Result.STOPPED:
        return [], History.TRUSTED
    if result != SpawnRecord.Result.PROVISIONED:
        objects = (
            SpawnRecord.objects.filter(
                username=username, server_name=server_name, result=SpawnRecord.Result.PROVISIONED
            )
            .order_by("-created_at", "-id")
            .values_list("cluster_objects", flat=True)
            .first()
        )
    refs = []
    for item in objects or []:
        if isinstance(item, dict) and {"kind", "namespace", "name"} <= item.keys():
            refs.append(provisioning.ObjectRef(kind=item["kind"], namespace=item["namespace"], name=item["name"]))
    return refs, History.TRUSTED if result == SpawnRecord.Result.PROVISIONED else History.UNTRUSTED


def _remember(username: str, server_name: str, choices: dict[str, str], *, history: History) -> None:
    """Keep the choices for next time's preselection.

    A server spawned before has its row already: one UPDATE, rather than the
    savepoint, locking read and write of ``update_or_create``. One never spawned has
    none: one INSERT. ``update_or_create`` stays for whatever else (a row deleted
    since, or made by a call that raced this one).
    """
    rows = RememberedChoices.objects.filter(username=username, server_name=server_name)
    if history == History.TRUSTED and rows.update(choices=choices, updated_at=timezone.now()):
        return
    if history == History.NEVER:
        try:
            with transaction.atomic():
                RememberedChoices.objects.create(username=username, server_name=server_name, choices=choices)
            return
        except IntegrityError:
            pass
    RememberedChoices.objects.update_or_create(
        username=username, server_name=server_name, defaults={"choices": choices}
    )


def prespawn_provision(
    *,
    username: str,
    server_name: str,
    pod_name: str,
    default_namespace: str,
    profile: str,
    user_options: Mapping[str, str],
    groups: list[str] | tuple[str, ...] = (),
    reply_version: int = 1,
) -> dict[str, Any]:
    """Validate, then apply everything the notebook needs; returns the overrides for the hub.

    ``reply_version`` 1 keeps to the original contract's reply keys: a hub on that
    contract mutates its spawner from the reply, and keys it never knew could set
    traits it does not expect. 2 adds the image and the profile's extra overrides.

    Every call is recorded, whether it was refused, failed in the cluster or succeeded.
    """
    started = time.monotonic()
    record = SpawnRecord(
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        groups=list(groups),
        profile=(profile or _option(user_options, "profile"))[:63],
        choices=_stored_input(user_options),
    )
    try:
        validated = _validated(
            username=username,
            server_name=server_name,
            pod_name=pod_name,
            default_namespace=default_namespace,
            profile=profile,
            user_options=user_options,
            groups=groups,
        )
    except ChoiceRefused as exc:
        _finish(record, SpawnRecord.Result.REFUSED, started=started, message=exc.summary())
        logger.info("prespawn refused", extra={"fields": sorted(exc.refusals), "reason": exc.summary()})
        raise

    plan = validated.plan
    record.choices = validated.choices
    record.namespace = plan.namespace
    if plan.service_account is not None:
        record.service_account = plan.service_account.name
        record.iam_role_arn = plan.service_account.role_arn
    try:
        # The lock covers the record too: the next spawn of this server prunes by it.
        with server_lock(username=username, server_name=server_name):
            previous, history = _previous_objects(username, server_name)
            # A server never spawned here has nothing of ours to find: no listing either.
            result = provisioning.provision(plan, previous=previous, recorded=history != History.UNTRUSTED)
            reply = prespawn_output(result.reply, reply_version=reply_version)
            record.cluster_objects = _object_list(result.objects)
            # Through JSON once: the reply may hold Decimals, which a JSONField cannot store as they are.
            record.reply = json.loads(json.dumps(reply, cls=DjangoJSONEncoder))
            _finish(record, SpawnRecord.Result.PROVISIONED, started=started)
    except Exception as exc:
        # Recorded here because the exception handler that answers 503 knows nothing of records.
        message = str(exc) if isinstance(exc, KubeError) else f"{type(exc).__name__}: {exc}"
        _finish(record, SpawnRecord.Result.FAILED, started=started, message=message)
        logger.warning("prespawn for %s/%s failed in the cluster: %s", username, server_name, exc)
        raise

    try:
        _remember(username, server_name, validated.choices, history=history)
    except DatabaseError as exc:
        # Only next time's preselection is lost; the notebook's objects are in place.
        logger.error("the choices of %s/%s could not be remembered: %s", username, server_name, exc)
    logger.info(
        "prespawn provisioned",
        extra={
            "server_name": server_name,
            "profile": plan.profile_slug,
            "namespace": plan.namespace,
            "objects": len(result.objects),
            "duration_ms": record.duration_ms,
        },
    )
    return reply


def _stored_gaffer_files(plan: SpawnPlan) -> dict[str, dict[str, str]]:
    """The chosen graph's ConfigMap files as the sync recorded them (for a dry run with no cluster)."""
    if plan.gaffer is None:
        return {}
    row = GafferGraph.objects.filter(key=plan.gaffer.id).values("graph_config_files", "schema_files").first()
    if row is None:
        return {}
    return {
        plan.gaffer.graph_config_map: dict(row["graph_config_files"] or {}),
        plan.gaffer.schema_config_map: dict(row["schema_files"] or {}),
    }


def prespawn_dry_run(
    *,
    username: str,
    server_name: str,
    pod_name: str,
    default_namespace: str,
    profile: str,
    user_options: Mapping[str, str],
    groups: list[str] | tuple[str, ...] = (),
    reply_version: int = 1,
) -> dict[str, Any]:
    """Validate as ``prespawn_provision`` does and say what it would do: the reply, plus ``objects``.

    Nothing is created, pruned or remembered, and no spawn is recorded: a dry run
    is a question, and the spawn records list what happened to notebooks.
    ``dry_run`` in the answer says who checked the manifests: ``server`` (the
    apiserver's server-side dry run) or ``local`` (no cluster configured).
    """
    plan = _validated(
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        default_namespace=default_namespace,
        profile=profile,
        user_options=user_options,
        groups=groups,
    ).plan
    result = provisioning.provision_dry_run(plan, stored_files=_stored_gaffer_files(plan))
    answer = replace(result.reply, objects=result.manifests, dry_run=result.checked_by)
    return dict(json.loads(json.dumps(prespawn_output(answer, reply_version=reply_version), cls=DjangoJSONEncoder)))


def poststop_clean(
    *, username: str, server_name: str, pod_name: str = "", groups: list[str] | tuple[str, ...] = ()
) -> list[dict[str, str]]:
    """Delete what /prespawn made for this server, and record it."""
    started = time.monotonic()
    record = SpawnRecord(username=username, server_name=server_name, pod_name=pod_name, groups=list(groups))
    try:
        with server_lock(username=username, server_name=server_name):
            deleted = cleanup.poststop_cleanup(username=username, server_name=server_name)
    except Exception as exc:
        _finish(record, SpawnRecord.Result.FAILED, started=started, message=f"poststop: {exc}")
        raise
    record.cluster_objects = _object_list(deleted)
    _finish(record, SpawnRecord.Result.STOPPED, started=started)
    return record.cluster_objects


def spawn_record_prune(*, retention_days: int) -> int:
    """Delete spawn records older than the retention period; returns how many went."""
    if retention_days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=retention_days)
    deleted, _ = SpawnRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
