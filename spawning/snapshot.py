"""A per-process snapshot of the inventory the spawn form is drawn from.

Nothing here depends on the user: the rows are read once per inventory
generation (see inventory/generation.py) and each /options request filters
them in Python with the same predicates /prespawn uses (inventory/access.py),
so the form and validation can never disagree. The generation is read before
the rows, so a snapshot is never older than the generation it is kept under.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform

from inventory.access import AccessRules
from inventory.generation import current_inventory_generation
from inventory.models import (
    GafferGraph,
    HdfsInstance,
    Namespace,
    NamespaceOption,
    NotebookVolume,
    Profile,
    ResourcePreset,
    ServiceAccount,
    SparkDefault,
)

# Every write the form depends on changes the generation; the age limit only
# bounds the harm of a write path that someone adds later and forgets to bump.
MAX_AGE_SECONDS = 30.0
# The one label /prespawn reads from a graph; the graphs' labels themselves are left out.
GRAPH_INSTANCE_LABEL = "app.kubernetes.io/instance"


@dataclass(frozen=True)
class Offer:
    """An inventory row as the form offers it: the model (for the access predicates) and its reply dict."""

    position: int
    item: Any
    out: Mapping[str, Any]


@dataclass(frozen=True)
class InventorySnapshot:
    """Everything /options and /prespawn read that is the same for every user, in the form's order."""

    generation: tuple[int, uuid.UUID] | None
    built_at: float
    rules: AccessRules
    profiles: tuple[Offer, ...]
    presets: tuple[ResourcePreset, ...]
    preset_out: Mapping[int, Mapping[str, Any]]
    namespace_options: tuple[NamespaceOption, ...]
    present_namespaces: frozenset[str]
    hdfs: tuple[Offer, ...]
    graphs: tuple[Offer, ...]
    # namespace → offers there, so a request looks only at its user's namespaces
    accounts_by_namespace: Mapping[str, tuple[Offer, ...]]
    volumes_by_namespace: Mapping[str, tuple[Offer, ...]]
    # What /prespawn looks chosen items up by. Every profile, so a disabled one is told
    # apart from an unknown one; the other kinds only as offered (neither hidden nor
    # missing), as validation refuses those alike.
    profiles_by_slug: Mapping[str, Profile]
    hdfs_by_key: Mapping[str, HdfsInstance]
    graphs_by_key: Mapping[str, GafferGraph]
    accounts_by_key: Mapping[str, ServiceAccount]
    volumes_by_key: Mapping[str, NotebookVolume]
    # graph pk → its GRAPH_INSTANCE_LABEL value as stored (None when it has none)
    graph_instances: Mapping[int, Any]
    spark_defaults: tuple[tuple[str, str], ...]


def _lean(queryset: QuerySet) -> QuerySet:
    # Labels and annotations can be large and nothing here reads them.
    return queryset.defer("labels", "annotations")


def _by_namespace(offers: list[Offer]) -> dict[str, tuple[Offer, ...]]:
    grouped: dict[str, list[Offer]] = defaultdict(list)
    for offer in offers:
        grouped[offer.item.namespace].append(offer)
    return {namespace: tuple(items) for namespace, items in grouped.items()}


def _by_key(offers: list[Offer]) -> dict[str, Any]:
    return {offer.item.key: offer.item for offer in offers}


def build_snapshot(generation: tuple[int, uuid.UUID] | None) -> InventorySnapshot:
    """Read every user-independent row the form and validation need: a fixed number of queries."""
    all_profiles = list(Profile.objects.all())
    profiles = [
        Offer(
            position=i,
            item=p,
            out={
                "slug": p.slug,
                "display_name": p.display_name,
                "description": p.description,
                "image": p.image,
                "default": p.default,
                "enable_hdfs": p.enable_hdfs,
                "enable_gaffer": p.enable_gaffer,
                "enable_spark": p.enable_spark,
            },
        )
        for i, p in enumerate(p for p in all_profiles if p.enabled)
    ]
    presets = tuple(ResourcePreset.objects.all())
    preset_out = {
        p.pk: {
            "slug": p.slug,
            "display_name": p.display_name,
            "description": p.description,
            "default": p.default,
            "cpu": float(p.cpu),
            "mem": int(p.mem),
            "spark_cpu": float(p.spark_cpu),
            "spark_mem": int(p.spark_mem),
            "disk": int(p.disk),
        }
        for p in presets
    }
    hdfs = [
        Offer(position=i, item=h, out={"id": h.key, "label": h.label, "description": h.description, "url": h.url})
        for i, h in enumerate(_lean(HdfsInstance.objects.offerable()))
    ]
    graphs = [
        Offer(position=i, item=g, out={"id": g.key, "label": g.label, "description": g.summary, "url": g.url})
        for i, g in enumerate(
            _lean(GafferGraph.objects.offerable())
            .defer("graph_config_files", "schema_files")
            .annotate(instance_label=KeyTransform(GRAPH_INSTANCE_LABEL, "labels"))
        )
    ]
    accounts = [
        Offer(
            position=i,
            item=a,
            out={
                "id": a.key,
                "namespace": a.namespace,
                "name": a.name,
                "label": a.label,
                "description": a.description,
                "role_arn": a.role_arn,
                "role_name": a.role_name,
                "role_console_url": a.role_console_url,
            },
        )
        for i, a in enumerate(_lean(ServiceAccount.objects.offerable()))
    ]
    volumes = [
        Offer(
            position=i,
            item=v,
            out={
                "id": v.key,
                "namespace": v.namespace,
                "name": v.name,
                "volume_name": v.volume_name,
                "server_name": v.owner_servername,
                "capacity": v.capacity,
            },
        )
        for i, v in enumerate(_lean(NotebookVolume.objects.offerable()))
    ]
    return InventorySnapshot(
        generation=generation,
        built_at=time.monotonic(),
        rules=AccessRules.load(),
        profiles=tuple(profiles),
        presets=presets,
        preset_out=preset_out,
        namespace_options=tuple(NamespaceOption.objects.all()),
        present_namespaces=frozenset(
            Namespace.objects.filter(missing_since__isnull=True).values_list("name", flat=True)
        ),
        hdfs=tuple(hdfs),
        graphs=tuple(graphs),
        accounts_by_namespace=_by_namespace(accounts),
        volumes_by_namespace=_by_namespace(volumes),
        profiles_by_slug={p.slug: p for p in all_profiles},
        hdfs_by_key=_by_key(hdfs),
        graphs_by_key=_by_key(graphs),
        accounts_by_key=_by_key(accounts),
        volumes_by_key=_by_key(volumes),
        graph_instances={offer.item.pk: offer.item.instance_label for offer in graphs},
        spark_defaults=tuple(SparkDefault.objects.values_list("key", "value")),
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
