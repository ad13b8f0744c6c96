"""The hub API's replies as typed objects; spawning/serializers.py turns them into the wire format.

Built by the services and the offered kinds, serialized only by the output
serializers, so the OpenAPI schema (generated from those serializers) is what
is sent. The key names on the wire are the original contract's
(ORIGINAL-CONTRACT.md) and those the hub package reads
(hub/optionsportal_hub/reply.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kube.provision import ObjectRef
from spawning.lifecycle import Notice


@dataclass(frozen=True)
class Range:
    min: float | int
    max: float | int


@dataclass(frozen=True)
class Freshness:
    last_synced_at: str | None
    stale: bool


@dataclass(frozen=True)
class OptionsData:
    """What /options answers besides the form's HTML: only what this user may use."""

    username: str
    server_name: str
    # Reply key → the typed items an offered kind put there (spawning/offers).
    offered: Mapping[str, Any]
    selected: Mapping[str, str]
    inventory: Freshness
    # Remembered choices that were retired and moved to their successors.
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class Resources:
    cpu_guarantee: float
    cpu_limit: float
    mem_guarantee: str
    mem_limit: str
    storage_capacity: str


@dataclass(frozen=True)
class KubespawnerOverride:
    """``kubespawner_override`` (reply version 2): KubeSpawner trait → value; ``None`` traits are left out.

    The named traits come from the chosen machine type; ``extra`` holds the profile's
    own overrides, sent as the operator typed them (a named trait wins over it).
    """

    extra: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    node_affinity_required: list[dict[str, Any]] | None = None
    extra_resource_guarantees: Mapping[str, str] | None = None
    extra_resource_limits: Mapping[str, str] | None = None
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: str | None = None
    mem_limit: str | None = None

    def is_empty(self) -> bool:
        return not self.extra and all(
            getattr(self, name) is None for name in self.__dataclass_fields__ if name != "extra"
        )


@dataclass(frozen=True)
class PrespawnReply:
    """The KubeSpawner overrides /prespawn answers; ``None`` keys are left out of the reply."""

    namespace: str
    image: str
    resources: Resources
    env: Mapping[str, str]
    labels: Mapping[str, str]
    storage_extra_labels: Mapping[str, str]
    volumes: list[dict[str, Any]]
    volumeMounts: list[dict[str, Any]]
    serviceAccount: str | None = None
    pvc_name: str | None = None
    kubespawner_override: KubespawnerOverride | None = None
    # Only for a dry run: the manifests a real call would apply, and who checked them.
    objects: list[dict[str, Any]] | None = None
    dry_run: str | None = None


@dataclass(frozen=True)
class PoststopReply:
    deleted: list[ObjectRef]


@dataclass
class ReplyBuilder:
    """The /prespawn reply while the offered kinds add their fragments (spawning/offers)."""

    namespace: str = ""
    image: str = ""
    cpu: float = 0.0
    memory: str = ""
    # Below the limits only when a machine type's guarantee policy says so; else equal to them.
    cpu_guarantee: float | None = None
    mem_guarantee: str | None = None
    storage_capacity: str = ""
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    storage_extra_labels: dict[str, str] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    service_account: str | None = None
    pvc_name: str | None = None
    kubespawner_override: dict[str, Any] | None = None
    # The machine type's traits (KubespawnerOverride's named fields), set by its kind.
    machine_type_traits: dict[str, Any] = field(default_factory=dict)

    def mount(self, volume: dict[str, Any], path: str) -> None:
        """A read-only volume of the notebook pod, mounted at ``path``."""
        self.volumes.append(volume)
        self.mounts.append({"name": volume["name"], "mountPath": path, "readOnly": True})

    def build(self) -> PrespawnReply:
        return PrespawnReply(
            namespace=self.namespace,
            image=self.image,
            resources=Resources(
                cpu_guarantee=self.cpu if self.cpu_guarantee is None else self.cpu_guarantee,
                cpu_limit=self.cpu,
                mem_guarantee=self.memory if self.mem_guarantee is None else self.mem_guarantee,
                mem_limit=self.memory,
                storage_capacity=self.storage_capacity,
            ),
            env=self.env,
            labels=self.labels,
            storage_extra_labels=self.storage_extra_labels,
            volumes=self.volumes,
            volumeMounts=self.mounts,
            serviceAccount=self.service_account,
            pvc_name=self.pvc_name,
            kubespawner_override=self._override(),
        )

    def _override(self) -> KubespawnerOverride | None:
        override = KubespawnerOverride(extra=dict(self.kubespawner_override or {}), **self.machine_type_traits)
        return None if override.is_empty() else override
