"""Gaffer: a graph whose REST API, graph config, schema and store properties the notebook gets.

A pod can mount only ConfigMaps and Secrets of its own namespace: when the
notebook runs elsewhere than the graph, its files are copied next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models.fields.json import KeyTransform

from inventory.models import GafferGraph
from kube.provision import CONFIG_MAP, SECRET, ObjectRef
from spawning.access import UserAccess, may_use_graph
from spawning.labels import object_name
from spawning.offers.base import ManifestContext, Validation
from spawning.offers.instances import InstanceKind, Instances
from spawning.offers.items import lean
from spawning.plan import GafferChoice, SpawnPlan
from spawning.replies import ReplyBuilder

GAFFER_GRAPH_DIR = "/etc/gaffer/graph/"
GAFFER_SCHEMA_DIR = "/etc/gaffer/schema/"
GAFFER_STORE_DIR = "/etc/gaffer/store/"
# The one label /prespawn reads from a graph; the graphs' labels themselves are left out of the snapshot.
GRAPH_INSTANCE_LABEL = "app.kubernetes.io/instance"


@dataclass(frozen=True)
class GafferMount:
    """One of a graph's files sets; ``volume`` is also the name prefix of its copy."""

    volume: str
    kind: str
    source_name: str
    component: str
    mount_path: str


def gaffer_copies_needed(plan: SpawnPlan) -> bool:
    """A pod can only mount ConfigMaps and Secrets of its own namespace."""
    return plan.gaffer is not None and plan.gaffer.namespace != plan.namespace


def gaffer_source_refs(plan: SpawnPlan) -> list[ObjectRef]:
    """The graph's own objects that must be read to copy them into the notebook's namespace."""
    if plan.gaffer is None or not gaffer_copies_needed(plan):
        return []
    graph = plan.gaffer
    refs = []
    if graph.graph_config_map:
        refs.append(ObjectRef(CONFIG_MAP, graph.namespace, graph.graph_config_map))
    if graph.schema_config_map:
        refs.append(ObjectRef(CONFIG_MAP, graph.namespace, graph.schema_config_map))
    if graph.store_secret:
        refs.append(ObjectRef(SECRET, graph.namespace, graph.store_secret))
    return refs


def gaffer_mounts(plan: SpawnPlan) -> list[GafferMount]:
    graph = plan.gaffer
    if graph is None:
        return []
    candidates = (
        GafferMount(
            "jhub-gaffer-graph-config", CONFIG_MAP, graph.graph_config_map, "gaffer-graph-config", GAFFER_GRAPH_DIR
        ),
        GafferMount("jhub-gaffer-schema", CONFIG_MAP, graph.schema_config_map, "gaffer-schema", GAFFER_SCHEMA_DIR),
        GafferMount("jhub-gaffer-store", SECRET, graph.store_secret, "gaffer-store", GAFFER_STORE_DIR),
    )
    # A graph an operator added by hand may have no files, only a REST URL.
    return [mount for mount in candidates if mount.source_name]


def _mounted_name(plan: SpawnPlan, mount: GafferMount) -> str:
    return object_name(plan, mount.volume) if gaffer_copies_needed(plan) else mount.source_name


@dataclass(frozen=True)
class Graphs:
    instances: Instances
    # graph pk → its GRAPH_INSTANCE_LABEL value as stored (None when it has none)
    instance_labels: Mapping[int, Any]


class GafferKind(InstanceKind):
    name = "gaffer"
    template = "spawning/offers/gaffer.html"
    choice_fields = ("gaffer_graph",)
    reply_key = "gaffer_graphs"
    form_name = "graph"
    feature = "gaffer"
    feature_title = "Gaffer"
    what = "Gaffer graph"

    def load(self) -> Graphs:
        rows = list(
            lean(GafferGraph.objects.offerable())
            .defer("graph_config_files", "schema_files")
            .annotate(instance_label=KeyTransform(GRAPH_INSTANCE_LABEL, "labels"))
        )
        return Graphs(
            instances=Instances.of(rows, description="summary"),
            instance_labels={row.pk: row.instance_label for row in rows},
        )

    def instances(self, loaded: Graphs) -> Instances:
        return loaded.instances

    def may_use(self, access: UserAccess, row: Any) -> bool:
        return may_use_graph(access, row)

    def validate(self, v: Validation) -> None:
        graph = self.chosen(v)
        if graph is None:
            return
        loaded: Graphs = v.snapshot.kinds[self.name]
        graph_config_map, schema_config_map, store_secret = graph.mounted_files()
        v.plan["gaffer"] = GafferChoice(
            id=graph.key,
            namespace=graph.namespace,
            # The snapshot leaves the labels out but keeps this one.
            instance=loaded.instance_labels.get(graph.pk) or graph.name,
            url=graph.url,
            graph_config_map=graph_config_map,
            schema_config_map=schema_config_map,
            store_secret=store_secret,
        )

    def source_refs(self, plan: SpawnPlan) -> list[ObjectRef]:
        return gaffer_source_refs(plan)

    def manifests(self, plan: SpawnPlan, ctx: ManifestContext) -> list[dict[str, Any]]:
        if plan.gaffer is None or not gaffer_copies_needed(plan):
            return []
        objects = []
        for mount in gaffer_mounts(plan):
            ref = ObjectRef(mount.kind, plan.gaffer.namespace, mount.source_name)
            if ref not in ctx.gaffer_sources:
                raise ValueError(f"the contents of {ref.kind} {ref.namespace}/{ref.name} are needed to copy it")
            source = ctx.gaffer_sources[ref]
            copy: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": mount.kind,
                "metadata": ctx.metadata(object_name(plan, mount.volume), mount.component),
                "data": dict(source.data),
            }
            if mount.kind == SECRET:
                copy["type"] = source.secret_type or "Opaque"
            elif source.binary_data:
                copy["binaryData"] = dict(source.binary_data)
            objects.append(copy)
        return objects

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if plan.gaffer is None:
            return
        if plan.gaffer.url:
            # A graph with no REST API (a static entry with restApi null) sets none, as in the original.
            reply.env["GAFFER_REST_API_URL"] = plan.gaffer.url
        for mount in gaffer_mounts(plan):
            name = _mounted_name(plan, mount)
            source = {"secret": {"secretName": name}} if mount.kind == SECRET else {"configMap": {"name": name}}
            reply.mount({"name": mount.volume, **source}, mount.mount_path)


KIND = GafferKind()
