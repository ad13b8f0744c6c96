"""Home volumes: one of the user's own claims in the chosen namespace, or a new volume of a size."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from inventory.models import NotebookVolume
from kube import names
from spawning.access import UserAccess, may_use_volume
from spawning.labels import LABEL_SERVERNAME, LABEL_USERNAME
from spawning.offers.base import NumberField, OfferContext, Validation
from spawning.offers.items import ItemSerializer, text
from spawning.offers.placed import PlacedKind
from spawning.offers.resources import number_state
from spawning.plan import SpawnPlan, VolumeChoice
from spawning.replies import ReplyBuilder

DISK = NumberField("resources_hdd", "disk", "Size")
# A Kubernetes label value: the volume name is stored as one on the claim.
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


@dataclass(frozen=True)
class VolumeItem:
    id: str
    namespace: str
    name: str
    volume_name: str
    server_name: str
    capacity: str


class VolumeOut(ItemSerializer):
    id = serializers.CharField(help_text="namespace:claim name")
    namespace = serializers.CharField()
    name = serializers.CharField()
    volume_name = serializers.CharField()
    server_name = serializers.CharField()
    capacity = serializers.CharField()


def _item(v: NotebookVolume) -> VolumeItem:
    return VolumeItem(
        id=v.key,
        namespace=v.namespace,
        name=v.name,
        volume_name=v.volume_name,
        server_name=v.owner_servername,
        capacity=v.capacity,
    )


def default_volume_name(server_name: str) -> str:
    """The original named a new volume after the server, or ``default`` for the default server."""
    return server_name or "default"


class VolumeKind(PlacedKind):
    name = "volume"
    choice_fields = ("volume",)
    number_fields = (DISK,)
    reply_key = "volumes"
    serializer = VolumeOut
    what = "volume"

    def rows(self) -> Any:
        return NotebookVolume.objects.offerable()

    def item(self, row: NotebookVolume) -> VolumeItem:
        return _item(row)

    def may_use(self, access: UserAccess, row: NotebookVolume, *, namespaces: list[str]) -> bool:
        return may_use_volume(access, row, namespaces=namespaces)

    def preselect(self, ctx: OfferContext, remembered: Mapping[str, Any], selected: dict[str, str]) -> None:
        super().preselect(ctx, remembered, selected)
        name = remembered.get("volume_name")
        selected["volume_name"] = name if isinstance(name, str) and name else default_volume_name(ctx.server_name)

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        volumes, chosen = self.in_namespace(data, selected, state)
        return {
            "volumes": volumes,
            "volume": chosen["id"] if chosen else "",
            "volume_name": text(selected.get("volume_name")) or data.get("server_name") or "default",
            "disk": number_state(DISK, data, selected, state),
        }

    def validate(self, v: Validation) -> None:
        raw_name = v.option("volume_name")
        # Provisioning turns the default into a safe label value, as it does the server name itself.
        volume_name = raw_name or default_volume_name(v.server_name)
        if raw_name and not _LABEL_VALUE.match(raw_name):
            v.refuse(
                "volume_name",
                "A volume name is 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit.",
            )
        disk = int(v.numbers[DISK.name])
        choice = VolumeChoice(volume_name=volume_name, size_gb=disk)
        volume = self.chosen(v)
        if volume is not None:
            choice = VolumeChoice(
                volume_name=volume.volume_name or volume_name, size_gb=disk, existing_claim=volume.name
            )
        v.choices["volume_name"] = choice.volume_name
        v.plan["volume"] = choice

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        reply.storage_capacity = f"{plan.volume.size_gb}G"
        # What discovery reads a volume's owner from (labels only: KubeSpawner 1.1
        # has no annotations for the claim).
        reply.storage_extra_labels = {
            "app.kubernetes.io/name": "jupyterhub",
            "app.kubernetes.io/component": "notebook-volume",
            LABEL_USERNAME: names.owner_label_value(plan.username),
            LABEL_SERVERNAME: names.owner_label_value(plan.server_name),
            "hub.jupyter.org/volume-name": names.owner_label_value(
                plan.volume.volume_name or plan.server_name or "default"
            ),
        }
        if plan.volume.existing_claim:
            reply.pvc_name = plan.volume.existing_claim


KIND = VolumeKind()
