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

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

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
    ref_of,
)
from spawning import offers
from spawning.labels import (
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


def provision(plan: SpawnPlan, *, previous: Sequence[ObjectRef] = ()) -> ProvisionResult:
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
    """
    selector = owner_selector(plan.username, plan.server_name)
    listings = [partial(list_kind, kind, selector, cached=True) for kind in KINDS]

    sources: dict[ObjectRef, ConfigSource] = {}
    existing: list[LabelledObject] = []
    source_refs = _source_refs(plan)
    if source_refs:
        # The manifests need the files first; the listing rides along in the same round trip.
        read, listed = run_all_pair([partial(read_config_source, ref) for ref in source_refs], listings)
        sources = {source.ref: source for source in read}
        existing = [found for per_kind in listed for found in per_kind]
        listings = []

    manifests = plan_objects(plan, gaffer_sources=sources)
    applies = [partial(apply_object, manifest) for manifest in manifests]
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
    return ProvisionResult(reply=build_reply(plan), objects=refs)


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
