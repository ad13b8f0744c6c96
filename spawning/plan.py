"""A validated spawn: what /prespawn decided, before anything is made in the cluster.

Validation (spawning.services) turns the hub's request into a SpawnPlan; only
then does provisioning (spawning.provisioning) build and apply objects from it.
Nothing in a plan is unchecked user input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class HdfsChoice:
    id: str
    url: str


@dataclass(frozen=True)
class GafferChoice:
    id: str
    namespace: str
    instance: str
    url: str
    graph_config_map: str
    schema_config_map: str
    store_secret: str


@dataclass(frozen=True)
class ServiceAccountChoice:
    namespace: str
    name: str
    role_arn: str


@dataclass(frozen=True)
class VolumeChoice:
    """An existing claim of the user's (``existing_claim``), or a new volume."""

    volume_name: str
    size_gb: int
    existing_claim: str | None = None


@dataclass(frozen=True)
class SparkChoice:
    image: str
    executor_cpu: Decimal
    executor_mem_mb: int
    ingress_host: str = ""
    ingress_path: str = ""
    defaults: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DataSourceChoice:
    slug: str
    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProfileOptionChoice:
    """One profile option as chosen: a choice's key, or a typed value, and the overrides they bring."""

    option: str
    key: str
    value: str
    overrides: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class MachineTypeChoice:
    """Where the notebook runs and what it is guaranteed, from an operator's machine type."""

    slug: str
    node_selector: dict[str, str] = field(hash=False)
    tolerations: list[dict[str, Any]] = field(hash=False)
    # requiredDuringSchedulingIgnoredDuringExecution's nodeSelectorTerms.
    node_affinity_required: list[dict[str, Any]] = field(hash=False)
    # Extended resource → count (only those above 0); requests equal limits, as Kubernetes requires.
    extended: tuple[tuple[str, int], ...]
    cpu_guarantee: Decimal
    mem_guarantee_mb: int


@dataclass(frozen=True)
class SpawnPlan:
    username: str
    server_name: str
    pod_name: str
    namespace: str
    profile_slug: str
    image: str
    cpu: Decimal
    mem_mb: int
    volume: VolumeChoice
    service_account: ServiceAccountChoice | None = None
    hdfs: HdfsChoice | None = None
    gaffer: GafferChoice | None = None
    spark: SparkChoice | None = None
    data_source: DataSourceChoice | None = None
    machine_type: MachineTypeChoice | None = None
    profile_options: tuple[ProfileOptionChoice, ...] = ()
    groups: tuple[str, ...] = field(default=())
    # The profile's extra KubeSpawner trait values, passed to the hub as they are.
    kubespawner_override: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
