"""Turn a validated SpawnPlan into cluster objects and the hub's reply, and apply them.

``plan_objects`` and ``plan_reply`` are pure: the same plan gives the same
manifests and reply, with no cluster involved. ``provision`` reads what it must
copy (a Gaffer graph's files, when the notebook runs in another namespace),
applies everything with server-side apply, and removes what an earlier spawn of
the same server made that this one no longer needs.

What each offered kind makes and adds to the reply is declared in its module
(spawning/offers). Names, mount paths, env vars and reply keys follow the original options server
(docs: ORIGINAL-CONTRACT.md, "What /prespawn created"), so an existing hub
config keeps working.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.conf import settings

from kube.client import KubeError, cluster_configured
from kube.concurrent import run_all, run_all_pair, run_settled_pair, values
from kube.provision import (
    CONFIG_MAP,
    KINDS,
    SECRET,
    AppliedObject,
    ConfigSource,
    LabelledObject,
    ObjectRef,
    apply_object,
    delete_objects,
    list_kind,
    read_config_source,
    read_config_sources,
    read_object,
    ref_of,
)
from spawning import offers
from spawning.labels import (
    ANNOTATION_LAST_APPLIED,
    notebook_labels,
    object_metadata,
    owned_by,
    owner_selector,
)
from spawning.offers.base import ManifestContext
from spawning.offers.gaffer import gaffer_source_refs
from spawning.offers.spark import spark_properties, spark_ui_ingress_name
from spawning.plan import SpawnPlan
from spawning.replies import PrespawnReply, ReplyBuilder

__all__ = [
    "ANNOTATION_APPLIED_HASH",
    "DryRunResult",
    "ObjectRef",
    "ProvisionResult",
    "build_reply",
    "gaffer_source_refs",
    "plan_objects",
    "plan_reply",
    "provision",
    "provision_dry_run",
    "spark_properties",
    "spark_ui_ingress_name",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProvisionResult:
    """What /prespawn answers the hub, and which objects it made or updated."""

    reply: PrespawnReply
    objects: list[ObjectRef]
    # Those of ``objects`` found exactly as this spawn would apply them, so not applied again.
    unchanged: list[ObjectRef] = field(default_factory=list)


@dataclass(frozen=True)
class DryRunResult:
    """What /prespawn would answer and apply; ``checked_by`` is ``"server"`` when the apiserver saw it."""

    reply: PrespawnReply
    manifests: list[dict[str, Any]]
    checked_by: str


# --- Pure builders -----------------------------------------------------------


def _stamp(applied_at: datetime | None) -> str:
    moment = (applied_at or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_objects(
    plan: SpawnPlan,
    *,
    gaffer_sources: Mapping[ObjectRef, ConfigSource] | None = None,
    applied_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every manifest the plan needs, from every offered kind, as plain dicts ready for server-side apply.

    ``gaffer_sources`` holds the objects the kinds asked to read first (a Gaffer
    graph's ConfigMaps/Secret, see ``gaffer_source_refs``) when they must be copied.
    """
    stamp = _stamp(applied_at)

    def metadata(name: str, component: str) -> dict[str, Any]:
        return object_metadata(plan, name=name, component=component, applied_at=stamp)

    ctx = ManifestContext(metadata=metadata, gaffer_sources=gaffer_sources or {})
    return [manifest for kind in offers.KINDS for manifest in kind.manifests(plan, ctx)]


def build_reply(plan: SpawnPlan) -> PrespawnReply:
    """The overrides the hub applies to its spawner (see the contract's table), from every offered kind."""
    reply = ReplyBuilder(labels=notebook_labels(plan))
    for kind in offers.KINDS:
        kind.reply(plan, reply)
    return reply.build()


def plan_reply(plan: SpawnPlan) -> dict[str, Any]:
    """The reply as a hub asking for ``reply_version`` 2 gets it."""
    from spawning.serializers import prespawn_output

    return prespawn_output(build_reply(plan), reply_version=2)


# --- Applying ----------------------------------------------------------------


def _source_refs(plan: SpawnPlan) -> list[ObjectRef]:
    """What the kinds must read before their manifests can be built (a graph's files to copy)."""
    return [ref for kind in offers.KINDS for ref in kind.source_refs(plan)]


# What each object we apply carries: a digest of the manifest (all but the last-applied stamp), so a
# later spawn can tell, from the object alone, whether applying the same choices again would change it.
ANNOTATION_APPLIED_HASH = "optionsportal.io/applied-hash"


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A digest of what an apply of ``manifest`` sets, leaving out when it was applied.

    It covers a Secret copy's data too; it is stored on that Secret itself, so whoever
    can read the digest can read the data anyway.
    """
    metadata = manifest["metadata"]
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in (ANNOTATION_LAST_APPLIED, ANNOTATION_APPLIED_HASH)
    }
    body = {**manifest, "metadata": {**metadata, "annotations": annotations}}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    metadata = manifest["metadata"]
    annotations = {**(metadata.get("annotations") or {}), ANNOTATION_APPLIED_HASH: manifest_hash(manifest)}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def _contains(live: Any, wanted: Any) -> bool:
    """Does the stored object hold every field we set, with our values? (It may hold more: defaults, others' fields.)"""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(
            key in live and _contains(live[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(_contains(have, want) for have, want in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)


def _applied_at(live: Mapping[str, Any]) -> datetime | None:
    stamp = ((live.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_LAST_APPLIED, "")
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def unchanged(manifest: Mapping[str, Any], live: Mapping[str, Any] | None, *, now: datetime) -> bool:
    """Would applying ``manifest`` (with its hash annotation) leave the stored object ``live`` as it is?

    Three things must hold. The object carries the hash of this very manifest: so the
    last apply set exactly these fields, and no field we set then and not now lingers
    (server-side apply would remove it). Every field of the manifest is still there with
    our value: someone else may have edited or dropped one since, which the annotation
    alone would not show. And the last-applied stamp is recent: the sweep removes our
    objects whose notebook pod is missing once that stamp is older than its grace
    period, and this spawn's pod does not exist yet, so a stamp past half the grace
    period is renewed by applying again.
    """
    if live is None:
        return False
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_APPLIED_HASH) != manifest["metadata"]["annotations"][ANNOTATION_APPLIED_HASH]:
        return False
    applied_at = _applied_at(live)
    if applied_at is None or (now - applied_at).total_seconds() > settings.SWEEP_GRACE_SECONDS / 2:
        return False
    metadata = manifest["metadata"]
    wanted_annotations = {k: v for k, v in metadata["annotations"].items() if k != ANNOTATION_LAST_APPLIED}
    # A listed item carries no kind or apiVersion; the name and namespace already matched.
    wanted = {key: value for key, value in manifest.items() if key not in ("kind", "apiVersion", "metadata")}
    wanted["metadata"] = {**metadata, "annotations": wanted_annotations}
    return _contains(live, wanted)


def _planned_refs(plan: SpawnPlan, source_refs: Sequence[ObjectRef]) -> list[ObjectRef]:
    """Which objects the plan makes; names never depend on the copied files, so empty ones do here."""
    placeholders = {ref: ConfigSource(ref=ref, data={}) for ref in source_refs}
    return [ref_of(manifest) for manifest in plan_objects(plan, gaffer_sources=placeholders)]


def provision(plan: SpawnPlan, *, previous: Sequence[ObjectRef] = (), recorded: bool = False) -> ProvisionResult:
    """Apply everything the plan needs; raise a KubeError (the view answers 503) if any apply fails.

    Round trips: the Gaffer files are read first only when they must be copied;
    then every apply runs side by side, together with the listing of what this
    server already has. Objects an earlier spawn of the same server made that
    this plan does not need (another namespace, Spark no longer chosen, a
    Gaffer store copy) are deleted afterwards, so credentials copied for an old
    choice do not linger.

    On failure, objects this call *created* (HTTP 201) are deleted again, best
    effort, so a refused spawn leaves no half-made new set behind. Objects that
    existed before are left as they are: they belong to the server's earlier
    spawn, a retry re-applies them (apply is idempotent and converges), and
    /poststop or the sweep removes them if no notebook follows. If that delete
    fails too (the apiserver is gone), the objects still carry our labels and a
    last-applied time, so the sweep collects them after its grace period.

    What an earlier spawn left is found two ways: ``previous``, the objects the
    last recorded spawn of this server made (exact, from the database; the
    caller holds the server's lock, so that record is complete), and a listing
    from the apiserver's watch cache (cheap, and it also finds objects no record
    names, such as those of a spawn recorded before a database restore).

    ``recorded`` says ``previous`` is the whole story: the server's latest record is
    the spawn that made them (or a /poststop that removed everything). Then nothing is
    listed, and each planned object that record names is read first (by name, a quorum
    read, in the same round trip as the Gaffer files): one found exactly as it would
    be applied (see ``unchanged``) is not applied again. So a re-spawn with the same
    choices and unchanged sources costs reads only, while an object deleted or edited
    behind our back is applied again. A server never spawned before is ``recorded``
    with nothing ``previous``: nothing to read, list or prune. Without a trustworthy
    record (one after a failure, or whose records were pruned by age) every object is
    applied and the listing runs, as before.
    """
    now = datetime.now(UTC)
    selector = owner_selector(plan.username, plan.server_name)
    listings = [] if recorded else [partial(list_kind, kind, selector, cached=True) for kind in KINDS]

    sources: dict[ObjectRef, ConfigSource] = {}
    live: dict[ObjectRef, Mapping[str, Any] | None] = {}
    existing: list[LabelledObject] = []
    source_refs = _source_refs(plan)
    reads = [partial(read_config_source, ref) for ref in source_refs]
    known = set(previous) if recorded else set()
    checks = [ref for ref in _planned_refs(plan, source_refs) if ref in known] if known else []
    if checks:
        read, looked = run_settled_pair(reads, [partial(read_object, ref) for ref in checks])
        sources = {source.ref: source for source in values(read)}
        # An object that could not be read is applied, as if it were not there.
        live = {ref: found for ref, found in zip(checks, looked, strict=True) if not isinstance(found, KubeError)}
    elif reads:
        # The manifests need the files first; the listing rides along in the same round trip.
        read_sources, listed = run_all_pair(reads, listings)
        sources = {source.ref: source for source in read_sources}
        existing = [found for per_kind in listed for found in per_kind]
        listings = []

    manifests = [_with_hash(manifest) for manifest in plan_objects(plan, gaffer_sources=sources, applied_at=now)]
    kept = {ref_of(manifest) for manifest in manifests if unchanged(manifest, live.get(ref_of(manifest)), now=now)}
    applies = [partial(apply_object, manifest) for manifest in manifests if ref_of(manifest) not in kept]
    applied, listed_later = run_settled_pair(applies, listings)
    try:
        values(applied)
    except KubeError:
        _undo([result.ref for result in applied if isinstance(result, AppliedObject) and result.created])
        raise
    # The listing only finds leftovers to prune: one that failed leaves them for /poststop or the sweep.
    existing += [found for per_kind in listed_later if not isinstance(per_kind, KubeError) for found in per_kind]

    refs = [ref_of(manifest) for manifest in manifests]
    _prune(plan, existing, keep=set(refs), previous=previous)
    return ProvisionResult(reply=build_reply(plan), objects=refs, unchanged=[ref for ref in refs if ref in kept])


REDACTED = "(redacted)"


def _redacted(manifest: dict[str, Any]) -> dict[str, Any]:
    # A Gaffer store Secret holds credentials: whoever looks at a dry run sees that
    # it would be copied and under which keys, not what it holds.
    if manifest["kind"] != SECRET:
        return manifest
    return {**manifest, "data": dict.fromkeys(manifest.get("data") or {}, REDACTED)}


def provision_dry_run(plan: SpawnPlan, *, stored_files: Mapping[str, Mapping[str, str]] | None = None) -> DryRunResult:
    """What ``provision`` would apply and reply, making and deleting nothing.

    With a cluster configured, every manifest goes through the apiserver's
    server-side dry run (``dryRun=All`` on the same apply patch), so admission,
    schema and name errors show as they would on a real spawn; the Gaffer files
    to copy are read as ``provision`` reads them. With no cluster the manifests
    are only built (``checked_by`` ``"local"``), copying the graph's files from
    ``stored_files`` (ConfigMap name → files, as the sync recorded them). Secret
    values are redacted either way.
    """
    if cluster_configured():
        sources = {source.ref: source for source in read_config_sources(_source_refs(plan))}
        manifests = plan_objects(plan, gaffer_sources=sources)
        run_all([partial(apply_object, manifest, dry_run=True) for manifest in manifests])
        checked_by = "server"
    else:
        files = stored_files or {}
        # The sync never stores a Secret's contents, so a local dry run cannot name its keys.
        sources = {
            ref: ConfigSource(ref=ref, data=dict(files.get(ref.name) or {}) if ref.kind == CONFIG_MAP else {})
            for ref in _source_refs(plan)
        }
        manifests = plan_objects(plan, gaffer_sources=sources)
        checked_by = "local"
    return DryRunResult(
        reply=build_reply(plan), manifests=[_redacted(manifest) for manifest in manifests], checked_by=checked_by
    )


def _undo(created: Sequence[ObjectRef]) -> None:
    if not created:
        return
    _, failed = delete_objects(created)
    for ref, error in failed:
        logger.warning("could not remove %s %s/%s after a failed apply: %s", ref.kind, ref.namespace, ref.name, error)


def _prune(
    plan: SpawnPlan,
    existing: Sequence[LabelledObject],
    *,
    keep: set[ObjectRef],
    previous: Sequence[ObjectRef] = (),
) -> None:
    # Failing to prune does not fail the spawn: the new set is complete, and
    # /poststop removes the leftovers with the rest.
    listed = [found.ref for found in existing if owned_by(found, plan.username, plan.server_name)]
    stale = [ref for ref in dict.fromkeys([*previous, *listed]) if ref not in keep]
    if not stale:
        return
    _, failed = delete_objects(stale)
    for ref, error in failed:
        logger.warning("could not remove stale %s %s/%s: %s", ref.kind, ref.namespace, ref.name, error)
