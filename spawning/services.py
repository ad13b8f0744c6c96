"""Writes for the hub API: validate a spawn, provision it, clean up after it, and record each.

Validation runs completely before anything is made in the cluster, so a
refused choice never leaves a half-made set of objects behind.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from inventory.access import (
    WHOLE_NUMBER_FIELDS,
    Bound,
    UserAccess,
    effective_bounds,
    may_use_graph,
    may_use_hdfs,
    may_use_profile,
    may_use_service_account,
    may_use_volume,
    namespace_choices,
    preset_fits,
)
from inventory.models import GafferGraph, Profile
from kube.client import KubeError
from spawning import cleanup, provisioning
from spawning.errors import ChoiceRefused
from spawning.form import CUSTOM_PRESET
from spawning.locks import server_lock
from spawning.models import RememberedChoices, SpawnRecord
from spawning.plan import (
    GafferChoice,
    HdfsChoice,
    ServiceAccountChoice,
    SparkChoice,
    SpawnPlan,
    VolumeChoice,
)
from spawning.selectors import NUMBER_FIELDS, default_volume_name
from spawning.snapshot import InventorySnapshot, current_snapshot

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A Kubernetes label value: the volume name is stored as one on the claim.
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
# A refused spawn's record keeps at most this much of what was submitted.
STORED_FIELDS = 50
STORED_VALUE_LENGTH = 200
OMITTED_KEY = "…"
_UNITS = {"cpu": "vCPU", "mem": "MB", "disk": "GB", "spark_cpu": "vCPU", "spark_mem": "MB"}


@dataclass(frozen=True)
class ValidatedSpawn:
    """A plan, plus the normalised form values to remember and record."""

    plan: SpawnPlan
    choices: dict[str, str]


def _option(options: Mapping[str, str], field: str) -> str:
    value = options.get(field, "")
    return value if isinstance(value, str) else str(value)


def _plain(value: Decimal) -> str:
    """``1.00`` → ``1``, ``0.10`` → ``0.1``, never an exponent."""
    return format(value.normalize(), "f")


def _parse_number(field: str, raw: str, bound_name: str, bound: Bound) -> Decimal:
    if raw == "":
        return bound.default
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ChoiceRefused(field, f"'{raw[:50]}' is not a number.") from None
    if not value.is_finite():
        raise ChoiceRefused(field, f"'{raw[:50]}' is not a number.")
    unit = _UNITS[bound_name]
    if not bound.contains(value):
        raise ChoiceRefused(
            field, f"{raw[:50]} is outside the allowed range {_plain(bound.min)} to {_plain(bound.max)} {unit}."
        )
    if bound_name in WHOLE_NUMBER_FIELDS and value != value.to_integral_value():
        raise ChoiceRefused(field, f"{raw[:50]} must be a whole number of {unit}.")
    return value


def _volume_name(raw: str, server_name: str) -> str:
    if raw == "":
        # Provisioning turns it into a safe label value, as it does the server name itself.
        return default_volume_name(server_name)
    if not _LABEL_VALUE.match(raw):
        raise ChoiceRefused(
            "volume_name",
            "A volume name is 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit.",
        )
    return raw


def _checked(field: str, what: str, key: str, items: Mapping[str, Any], allowed: Callable[[Any], bool]) -> Any:
    # The snapshot holds only offered items: a hidden or missing one is not found at all.
    item = items.get(key)
    # Hidden, missing, unavailable and unknown look the same: operators hide things for a reason.
    if item is None or not item.is_offered:
        raise ChoiceRefused(field, f"There is no {what} '{key[:320]}' available.")
    if not allowed(item):
        raise ChoiceRefused(field, f"You may not use the {what} '{key[:320]}'.")
    return item


def _profile_choice(snapshot: InventorySnapshot, access: UserAccess, slug: str) -> Profile:
    profile = snapshot.profiles_by_slug.get(slug) if slug else None
    if profile is None:
        raise ChoiceRefused("profile", f"There is no profile '{slug[:63]}'." if slug else "Choose a profile.")
    if not profile.enabled:
        raise ChoiceRefused("profile", f"The profile '{slug}' is disabled.")
    if not may_use_profile(access, profile):
        raise ChoiceRefused("profile", f"You may not use the profile '{slug}'.")
    return profile


def _namespace_choice(namespace: str, allowed: list[str]) -> str:
    if not namespace:
        raise ChoiceRefused("k8s_namespace", "Choose a namespace.")
    if namespace not in allowed:
        raise ChoiceRefused("k8s_namespace", f"You may not use the namespace '{namespace[:63]}'.")
    return namespace


class _Refusals:
    """Every refused field of one spawn, so the user can fix them all at once."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def check(self, call: Callable[[], T]) -> T | None:
        """``call()``, or None after noting its refusal."""
        try:
            return call()
        except ChoiceRefused as exc:
            for field, reasons in exc.refusals.items():
                self.fields.setdefault(field, []).extend(reasons)
            return None

    def raise_any(self) -> None:
        if self.fields:
            raise ChoiceRefused.of(self.fields)


def _numbers(snapshot: InventorySnapshot, access: UserAccess, options: Mapping[str, str]) -> dict[str, Decimal]:
    presets = list(snapshot.presets)
    bounds = effective_bounds(access=access, presets=presets)
    preset = _option(options, "resource_preset")
    refusals = _Refusals()
    # The preset only says which button was pressed; the numbers are what count, and are checked below.
    if preset not in ("", CUSTOM_PRESET) and not any(p.slug == preset and preset_fits(p, bounds) for p in presets):
        refusals.fields["resource_preset"] = [f"There is no preset '{preset[:63]}' you may use."]
    numbers: dict[str, Decimal] = {}
    for field, bound_name in NUMBER_FIELDS.items():
        value = refusals.check(partial(_parse_number, field, _option(options, field), bound_name, bounds[bound_name]))
        if value is not None:
            numbers[field] = value
    refusals.raise_any()
    return numbers


def _volume_choice(
    snapshot: InventorySnapshot,
    access: UserAccess,
    options: Mapping[str, str],
    *,
    namespace: str,
    allowed: list[str],
    server_name: str,
    disk: int,
) -> VolumeChoice:
    volume_id = _option(options, "volume")
    volume_name = _volume_name(_option(options, "volume_name"), server_name)
    if not volume_id:
        return VolumeChoice(volume_name=volume_name, size_gb=disk)
    volume = _checked(
        "volume", "volume", volume_id, snapshot.volumes_by_key, lambda v: may_use_volume(access, v, namespaces=allowed)
    )
    if volume.namespace != namespace:
        raise ChoiceRefused("volume", f"The volume '{volume_id}' is not in the namespace '{namespace}'.")
    return VolumeChoice(volume_name=volume.volume_name or volume_name, size_gb=disk, existing_claim=volume.name)


def _account_choice(
    snapshot: InventorySnapshot, access: UserAccess, account_id: str, *, namespace: str, allowed: list[str]
) -> ServiceAccountChoice | None:
    if not account_id:
        return None
    account = _checked(
        "k8s_service_account",
        "service account",
        account_id,
        snapshot.accounts_by_key,
        lambda a: may_use_service_account(access, a, namespaces=allowed),
    )
    if account.namespace != namespace:
        raise ChoiceRefused(
            "k8s_service_account", f"The service account '{account_id}' is not in the namespace '{namespace}'."
        )
    return ServiceAccountChoice(namespace=account.namespace, name=account.name, role_arn=account.role_arn)


def _hdfs_choice(snapshot: InventorySnapshot, access: UserAccess, hdfs_id: str, profile: Profile) -> HdfsChoice | None:
    if not hdfs_id:
        return None
    if not profile.enable_hdfs:
        raise ChoiceRefused("hdfs", f"The profile '{profile.slug}' does not enable HDFS.")
    instance = _checked("hdfs", "HDFS instance", hdfs_id, snapshot.hdfs_by_key, lambda i: may_use_hdfs(access, i))
    return HdfsChoice(id=instance.key, url=instance.url)


def _gaffer_choice(
    snapshot: InventorySnapshot, access: UserAccess, graph_id: str, profile: Profile
) -> GafferChoice | None:
    if not graph_id:
        return None
    if not profile.enable_gaffer:
        raise ChoiceRefused("gaffer_graph", f"The profile '{profile.slug}' does not enable Gaffer.")
    graph = _checked(
        "gaffer_graph", "Gaffer graph", graph_id, snapshot.graphs_by_key, lambda g: may_use_graph(access, g)
    )
    graph_config_map, schema_config_map, store_secret = graph.mounted_files()
    return GafferChoice(
        id=graph.key,
        namespace=graph.namespace,
        # The snapshot leaves the labels out but keeps this one.
        instance=snapshot.graph_instances.get(graph.pk) or graph.name,
        url=graph.url,
        graph_config_map=graph_config_map,
        schema_config_map=schema_config_map,
        store_secret=store_secret,
    )


def _spark_choice(snapshot: InventorySnapshot, profile: Profile, numbers: Mapping[str, Decimal]) -> SparkChoice | None:
    if not profile.enable_spark:
        return None
    return SparkChoice(
        image=profile.spark_image,
        executor_cpu=numbers["spark_cpu"],
        executor_mem_mb=int(numbers["spark_mem"]),
        ingress_host=profile.spark_ingress_host,
        ingress_path=profile.spark_ingress_path,
        defaults=snapshot.spark_defaults,
    )


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
    """Every check, in form order; every refused field is reported. Nothing here touches the cluster.

    A check that needs an earlier choice (the volume its namespace, HDFS its
    profile) runs only once that choice was accepted.

    Everything is read from ``snapshot``, the inventory the form is drawn from, and
    ``access`` must come from its rules, so what is offered and what is accepted agree.
    """
    if not pod_name:
        raise ChoiceRefused("pod_name", "The hub must name the notebook's pod.")
    refusals = _Refusals()
    chosen_profile = refusals.check(
        partial(_profile_choice, snapshot, access, profile or _option(user_options, "profile"))
    )
    allowed = [
        n.name
        for n in namespace_choices(
            access=access, options=snapshot.namespace_options, present=snapshot.present_namespaces
        )
    ]
    namespace = refusals.check(
        partial(_namespace_choice, _option(user_options, "k8s_namespace") or default_namespace, allowed)
    )
    numbers = refusals.check(partial(_numbers, snapshot, access, user_options))
    account_id = _option(user_options, "k8s_service_account")
    hdfs_id = _option(user_options, "hdfs")
    graph_id = _option(user_options, "gaffer_graph")
    volume = account = None
    if namespace is not None:
        volume = refusals.check(
            partial(
                _volume_choice,
                snapshot,
                access,
                user_options,
                namespace=namespace,
                allowed=allowed,
                server_name=server_name,
                # Without a valid size the volume is still checked; the spawn is refused anyway.
                disk=int(numbers["resources_hdd"]) if numbers is not None else 0,
            )
        )
        account = refusals.check(
            partial(_account_choice, snapshot, access, account_id, namespace=namespace, allowed=allowed)
        )
    hdfs = gaffer = None
    if chosen_profile is not None:
        hdfs = refusals.check(partial(_hdfs_choice, snapshot, access, hdfs_id, chosen_profile))
        gaffer = refusals.check(partial(_gaffer_choice, snapshot, access, graph_id, chosen_profile))
    refusals.raise_any()
    # Every check passed, so every choice was made.
    assert chosen_profile is not None and namespace is not None and numbers is not None and volume is not None
    plan = SpawnPlan(
        username=username,
        server_name=server_name,
        pod_name=pod_name,
        namespace=namespace,
        profile_slug=chosen_profile.slug,
        image=chosen_profile.image,
        cpu=numbers["resources_cpu"],
        mem_mb=int(numbers["resources_mem"]),
        volume=volume,
        service_account=account,
        hdfs=hdfs,
        gaffer=gaffer,
        spark=_spark_choice(snapshot, chosen_profile, numbers),
        groups=tuple(sorted(access.groups)),
        kubespawner_override={k: v for k, v in chosen_profile.kubespawner_override.items() if k != "image"},
    )
    choices = {
        "profile": chosen_profile.slug,
        "resource_preset": _option(user_options, "resource_preset"),
        "k8s_namespace": namespace,
        "volume": _option(user_options, "volume"),
        "volume_name": volume.volume_name,
        "k8s_service_account": account_id,
        "hdfs": hdfs_id,
        "gaffer_graph": graph_id,
        **{field: _plain(value) for field, value in numbers.items()},
    }
    return ValidatedSpawn(plan=plan, choices=choices)


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


def _previous_objects(username: str, server_name: str) -> list[provisioning.ObjectRef]:
    """What the last successful spawn of this server made, as recorded."""
    last = (
        SpawnRecord.objects.filter(username=username, server_name=server_name, result=SpawnRecord.Result.PROVISIONED)
        .order_by("-created_at", "-id")
        .values_list("cluster_objects", flat=True)
        .first()
    )
    refs = []
    for item in last or []:
        if isinstance(item, dict) and {"kind", "namespace", "name"} <= item.keys():
            refs.append(provisioning.ObjectRef(kind=item["kind"], namespace=item["namespace"], name=item["name"]))
    return refs


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
            result = provisioning.provision(plan, previous=_previous_objects(username, server_name))
            reply = result.reply
            if reply_version < 2:
                reply = {key: value for key, value in reply.items() if key not in provisioning.EXTENDED_REPLY_KEYS}
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
        RememberedChoices.objects.update_or_create(
            username=username, server_name=server_name, defaults={"choices": validated.choices}
        )
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
    reply = result.reply
    if reply_version < 2:
        reply = {key: value for key, value in reply.items() if key not in provisioning.EXTENDED_REPLY_KEYS}
    answer = {**reply, "objects": result.manifests, "dry_run": result.checked_by}
    return dict(json.loads(json.dumps(answer, cls=DjangoJSONEncoder)))


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
