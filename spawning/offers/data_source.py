"""Data sources: operator-curated files (connection settings) mounted into the notebook.

Offered to everyone until an access rule names one; the chosen one's files go into
a ConfigMap ``jhub-data-source-<user>[-<server>]`` in the notebook's namespace,
mounted read-only at ``/etc/datasources/<slug>``, which ``DATA_SOURCE_DIR`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from inventory.models import DataSource
from kube.provision import CONFIG_MAP
from spawning.access import UserAccess
from spawning.labels import object_name
from spawning.offers.base import ChoiceSection, ManifestContext, OfferContext, OfferedKind, Out, Validation, ids
from spawning.offers.items import ItemSerializer, pick_item
from spawning.plan import DataSourceChoice, SpawnPlan
from spawning.replies import ReplyBuilder

MOUNT_ROOT = "/etc/datasources"
VOLUME = "jhub-data-source"


@dataclass(frozen=True)
class DataSourceItem:
    id: str
    label: str
    description: str


class DataSourceOut(ItemSerializer):
    id = serializers.CharField(help_text="The data source's slug")
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Field.label at run time; the stubs cannot see that.
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()


def may_use_data_source(access: UserAccess, source: DataSource) -> bool:
    return source.enabled and access.allows("data_sources", source.pk)


def data_source_config_name(plan: SpawnPlan) -> str:
    return object_name(plan, VOLUME)


class DataSourceKind(OfferedKind):
    name = "data_source"
    template = "spawning/offers/_choice.html"
    choice_fields = ("data_source",)

    def load(self) -> tuple[tuple[DataSource, DataSourceItem], ...]:
        return tuple(
            (s, DataSourceItem(id=s.slug, label=s.display_name, description=s.description))
            for s in DataSource.objects.filter(enabled=True)
        )

    def output_fields(self) -> dict[str, Out]:
        return {"data_sources": Out(DataSourceOut, optional=True)}

    def offer(self, ctx: OfferContext) -> None:
        loaded = ctx.snapshot.kinds[self.name]
        ctx.offered["data_sources"] = [item for source, item in loaded if may_use_data_source(ctx.access, source)]

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        return {"data_source": ids(ctx.offered["data_sources"])}

    def preselect(self, ctx: OfferContext, remembered: Mapping[str, Any], selected: dict[str, str]) -> None:
        # Nothing offered, nothing preselected: the form data stays as it was before data sources.
        if ctx.offered["data_sources"]:
            super().preselect(ctx, remembered, selected)

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        items = data.get("data_sources") or []
        chosen = pick_item(items, "id", selected.get("data_source"), fallback_to_first=False)
        section = ChoiceSection(
            "data-source", "Data source", "Data source", "data_source", "data_sources", items, chosen
        )
        return {"choice": section} if items else {"choice": None}

    def validate(self, v: Validation) -> None:
        slug = v.option("data_source")
        v.choices["data_source"] = slug
        if not slug:
            return
        sources = {source.slug: source for source, _ in v.snapshot.kinds[self.name]}
        source = sources.get(slug)
        if source is None:
            v.refuse("data_source", f"There is no data source '{slug[:63]}' available.")
        elif not may_use_data_source(v.access, source):
            v.refuse("data_source", f"You may not use the data source '{slug}'.")
        else:
            v.plan["data_source"] = DataSourceChoice(slug=source.slug, files=tuple(sorted(source.files.items())))

    def manifests(self, plan: SpawnPlan, ctx: ManifestContext) -> list[dict[str, Any]]:
        if plan.data_source is None:
            return []
        return [
            {
                "apiVersion": "v1",
                "kind": CONFIG_MAP,
                "metadata": ctx.metadata(data_source_config_name(plan), "data-source"),
                "data": dict(plan.data_source.files),
            }
        ]

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if plan.data_source is None:
            return
        path = f"{MOUNT_ROOT}/{plan.data_source.slug}"
        reply.env["DATA_SOURCE_DIR"] = path
        reply.mount({"name": VOLUME, "configMap": {"name": data_source_config_name(plan)}}, path)


KIND = DataSourceKind()
