"""Machine types: the kind of node a notebook runs on, its GPUs, and what the cluster can run now.

Operators define machine types in the admin (inventory.models.MachineType): a node
selector, tolerations, an optional required node affinity, extended resources with
the counts a user may ask for, CPU and memory bounds of their own and a guarantee
policy. Access rules grant them per user and group, with a GPU ceiling
(``max_gpus``); a profile may run only on some of them.

The form offers the ``machine_type`` a user may use (with the chosen profile), one
count choice per extended resource (``gpus_<resource>``), and shows what is free now
(inventory.capacity, read live: capacity rows never change the inventory
generation) and, for the namespaces that have one, the quota left. /prespawn narrows
the CPU and memory bounds to the machine type's, then, once every kind has checked
its fields, refuses what breaks the namespace's LimitRange (after the LimitRanger's
defaults), exceeds its ResourceQuota, or fits no node of the machine type.

With no machine type configured nothing is offered and the replies are as before;
quotas and limit ranges are read only for a namespace that has one (the snapshot
keeps which do) or with a machine type chosen.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from inventory.capacity import (
    CPU,
    MEMORY,
    ContainerLimits,
    Largest,
    MachineTypeCapacity,
    NamespaceCompute,
    NodeCapacity,
    apply_limit_range,
    limit_range_refusals,
    limited_namespaces,
    machine_type_capacity,
    namespace_compute,
    node_capacities,
    quota_refusals,
)
from inventory.models import GuaranteePolicy, MachineType, Profile
from spawning import lifecycle
from spawning.access import Bound, UserAccess, preset_fits
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation, plain
from spawning.offers.items import ItemSerializer, pick_item, text
from spawning.offers.resources import RangeOut
from spawning.plan import MachineTypeChoice, SpawnPlan
from spawning.replies import Range, ReplyBuilder

FIELD = "machine_type"
COUNT_FIELD_PREFIX = "gpus_"
# KubeSpawner reads "512M" as 512 MiB (jupyterhub.traitlets.ByteSpecification): what the pod asks for.
MIB = 2**20
CPU_FIELD = "resources_cpu"
MEMORY_FIELD = "resources_mem"


# /options reads the nodes' free capacity on every request: at 500 nodes and 20,000
# pods that read (its GROUP BY over the pod rows) takes 56 to 95 ms (docs/benchmarks.md,
# "Compute"), against a few ms for the rest of the request. So each process keeps it
# this long, with the namespaces' quota use read alongside: the form's figures may be up to
# that old. /prespawn always reads afresh.
CAPACITY_MAX_AGE_SECONDS = 2.0
_capacity_lock = threading.Lock()
_capacity: _CapacityRead | None = None


@dataclass(frozen=True)
class _CapacityRead:
    """One read of the nodes' capacity and the namespaces' quotas, and what is derived from it."""

    at: float
    compute: Mapping[str, NamespaceCompute]
    # Of what was read: equal digests, equal figures on the form (the reply cache's key).
    digest: bytes
    derived: _Derived


class _Derived:
    """What one capacity read gives each machine type, the same for every user: kept with the read.

    Matching 500 nodes against a machine type and finding what fits took about 9 ms a type
    on every /options (bench/portal_bench.py --compute 500,20000, 2026-12-02); once per
    capacity read it is shared by every request until the next read.
    """

    def __init__(self, nodes: Sequence[NodeCapacity]) -> None:
        self.nodes = nodes
        self._types: dict[int, tuple[MachineType, MachineTypeCapacity, str, dict[Hashable, bool]]] = {}

    def _of(self, machine_type: MachineType) -> tuple[MachineType, MachineTypeCapacity, str, dict[Hashable, bool]]:
        kept = self._types.get(id(machine_type))
        # The same object, not an equal one: a later snapshot's row may differ under the same pk.
        if kept is None or kept[0] is not machine_type:
            capacity = machine_type_capacity(machine_type, self.nodes)
            kept = (machine_type, capacity, free_summary(capacity), {})
            self._types[id(machine_type)] = kept
        return kept

    def capacity(self, machine_type: MachineType) -> MachineTypeCapacity:
        return self._of(machine_type)[1]

    def summary(self, machine_type: MachineType) -> str:
        return self._of(machine_type)[2]

    def fits(self, machine_type: MachineType, *, cpu: Decimal, mem_mb: int, extended: Mapping[str, int]) -> bool:
        _, capacity, _, fits = self._of(machine_type)
        key = (cpu, mem_mb, tuple(sorted(extended.items())))
        if key not in fits:
            fits[key] = _fits(capacity, machine_type, cpu=cpu, mem_mb=mem_mb, extended=extended)
        return fits[key]


def _recent_capacity() -> _CapacityRead:
    """The kept read, or a new one when it is older than CAPACITY_MAX_AGE_SECONDS.

    A new read whose figures equal the kept one's keeps the kept objects, so what was
    derived from them, and the replies kept under their digest, stay valid.
    """
    global _capacity
    kept = _capacity
    now = time.monotonic()
    if kept is not None and now - kept.at < CAPACITY_MAX_AGE_SECONDS:
        return kept
    nodes = node_capacities()
    compute = namespace_compute()
    digest = hashlib.blake2b(repr((nodes, sorted(compute.items()))).encode(), digest_size=16).digest()
    if kept is not None and kept.digest == digest:
        fresh = _CapacityRead(at=now, compute=kept.compute, digest=digest, derived=kept.derived)
    else:
        fresh = _CapacityRead(at=now, compute=compute, digest=digest, derived=_Derived(nodes))
    with _capacity_lock:
        _capacity = fresh
    return fresh


def forget_node_capacities() -> None:
    """Drop the kept capacity, so the next /options reads it afresh."""
    global _capacity
    with _capacity_lock:
        _capacity = None


def count_field(resource: str) -> str:
    """The form field of one extended resource's count, e.g. ``gpus_nvidia.com/gpu``."""
    return f"{COUNT_FIELD_PREFIX}{resource}"


# --- What is loaded once per generation, and who may use it -----------------


@dataclass(frozen=True)
class MachineTypes:
    # Enabled machine types, in the operators' order.
    types: tuple[MachineType, ...]
    by_slug: Mapping[str, MachineType]
    # Profile pk → the machine types it is restricted to; a profile not here runs on every type.
    profile_types: Mapping[int, frozenset[int]]
    # Namespaces with a ResourceQuota or LimitRange (the sync changes the generation when this set does).
    limited_namespaces: frozenset[str]
    # Retired machine types (slug) → the one that replaces them (spawning/lifecycle.py).
    retired: Mapping[str, lifecycle.Retired] = field(default_factory=dict)


def may_use_machine_type(access: UserAccess, machine_type: MachineType) -> bool:
    return machine_type.enabled and access.allows("machine_types", machine_type.pk)


def runs_profile(loaded: MachineTypes, profile: Profile | None, machine_type: MachineType) -> bool:
    restricted = loaded.profile_types.get(profile.pk) if profile is not None else None
    return restricted is None or machine_type.pk in restricted


def gpu_ceiling(access: UserAccess) -> int | None:
    ceiling = access.ceiling("gpus")
    return None if ceiling is None else int(ceiling)


def allowed_counts(machine_type: MachineType, resource: str, ceiling: int | None) -> list[int]:
    counts = sorted(set((machine_type.extended_resources or {}).get(resource) or []))
    return [count for count in counts if ceiling is None or count <= ceiling]


def machine_type_bounds(machine_type: MachineType, bounds: Mapping[str, Bound]) -> dict[str, Bound] | None:
    """The user's bounds with CPU and memory within the machine type's own; None when those do not meet."""
    narrowed = dict(bounds)
    for key, low, high in (
        ("cpu", machine_type.min_cpu, machine_type.max_cpu),
        ("mem", machine_type.min_mem, machine_type.max_mem),
    ):
        bound = bounds[key]
        lowest = max(bound.min, Decimal(low)) if low is not None else bound.min
        highest = min(bound.max, Decimal(high)) if high is not None else bound.max
        if lowest > highest:
            return None
        narrowed[key] = Bound(min=lowest, max=highest, default=min(max(bound.default, lowest), highest))
    return narrowed


def guarantees(machine_type: MachineType | None, *, cpu: Decimal, mem_mb: int) -> tuple[Decimal, int]:
    if machine_type is None:
        return cpu, mem_mb
    return machine_type.guarantees(cpu_limit=cpu, mem_limit=mem_mb)


def notebook_asks(
    *, cpu: Decimal, mem_mb: int, cpu_guarantee: Decimal, mem_guarantee_mb: int, extended: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """The notebook container's requests and limits in milli-units, as KubeSpawner will write them."""
    counts = {name: count * 1000 for name, count in extended.items() if count > 0}
    requests = {CPU: int(cpu_guarantee * 1000), MEMORY: mem_guarantee_mb * MIB * 1000, **counts}
    limits = {CPU: int(cpu * 1000), MEMORY: mem_mb * MIB * 1000, **counts}
    return requests, limits


# --- How amounts read ----------------------------------------------------------


def resource_label(resource: str, count: int = 2) -> str:
    name = resource.rsplit("/", 1)[-1]
    if name.lower() == "gpu":
        return "GPU" if count == 1 else "GPUs"
    return resource


def amount_text(resource: str, amount: int) -> str:
    """A milli-amount of a resource as a person reads it: ``7.5 vCPU``, ``58 GB``, ``2 GPUs``."""
    base = resource.split(".", 1)[1] if resource.startswith(("requests.", "limits.")) else resource
    if base == CPU:
        return f"{plain(Decimal(amount) / 1000)} vCPU"
    if base == MEMORY:
        mib = Decimal(amount) / 1000 / MIB
        if mib >= 1024:
            return f"{plain((mib / 1024).quantize(Decimal('0.1'), rounding='ROUND_DOWN'))} GB"
        return f"{plain(mib.quantize(Decimal('1'), rounding='ROUND_DOWN'))} MB"
    count = Decimal(amount) / 1000
    if base in ("pods", "count/pods"):
        return f"{plain(count)} pods"
    if "/" in base:
        return f"{plain(count)} {resource_label(base, int(count))}"
    return f"{plain(count)} {base}"


def largest_text(largest: Largest) -> str:
    parts = [
        f"{amount // 1000} {resource_label(name, amount // 1000)}" for name, amount in sorted(largest.extended.items())
    ]
    parts += [amount_text(CPU, largest.cpu), amount_text(MEMORY, largest.memory)]
    return ", ".join(parts)


def free_summary(capacity: MachineTypeCapacity) -> str:
    """E.g. "2 of 8 GPUs free; the largest notebook that fits on one node: 1 GPU, 7.5 vCPU, 58 GB"."""
    if not capacity.nodes:
        return "No node of this type is ready now."
    parts = [
        f"{capacity.free.get(name, 0) // 1000} of {capacity.total.get(name, 0) // 1000} "
        f"{resource_label(name, capacity.total.get(name, 0) // 1000)} free"
        for name in capacity.extended_resources
    ]
    if capacity.largest is None:
        parts.append("no node has room for another notebook now")
    else:
        parts.append(f"the largest notebook that fits on one node: {largest_text(capacity.largest)}")
    text_ = "; ".join(parts)
    return text_[0].upper() + text_[1:]


_MILLI = re.compile(r"(\d+)m\b")


def _readable(resource: str, reason: str) -> str:
    # limit_range_refusals speaks milli-units; people read vCPU and MB.
    return _MILLI.sub(lambda match: amount_text(resource, int(match.group(1))), reason)


# --- Items of the /options data --------------------------------------------------


@dataclass(frozen=True)
class CountItem:
    count: int
    fits_now: bool


@dataclass(frozen=True)
class ExtendedItem:
    resource: str
    field: str
    label: str
    counts: tuple[CountItem, ...]
    free: int
    total: int


@dataclass(frozen=True)
class MachineTypeItem:
    id: str
    label: str
    description: str
    # The offered profiles this machine type runs.
    profiles: tuple[str, ...]
    cpu: Range
    mem: Range
    guarantee: str
    extended: tuple[ExtendedItem, ...]
    nodes: int
    free_summary: str
    # The offered presets within this type's sizes that no node of it can take now.
    presets_not_schedulable: tuple[str, ...]


@dataclass(frozen=True)
class QuotaLeftItem:
    resource: str
    left: str


@dataclass(frozen=True)
class NamespaceQuotaItem:
    namespace: str
    summary: str
    left: tuple[QuotaLeftItem, ...]


class _CountOut(serializers.Serializer):
    count = serializers.IntegerField()
    fits_now = serializers.BooleanField(help_text="Whether a node of the type takes this count now (smallest size).")


class _ExtendedOut(serializers.Serializer):
    resource = serializers.CharField(help_text="The extended resource, e.g. nvidia.com/gpu")
    field = serializers.CharField(help_text="The form field of its count")
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Field.label at run time; the stubs cannot see that.
    label = serializers.CharField()  # type: ignore[assignment]
    counts = _CountOut(many=True)
    free = serializers.IntegerField(help_text="Free now on the type's nodes")
    total = serializers.IntegerField(help_text="Allocatable on the type's nodes")


class MachineTypeOut(ItemSerializer):
    id = serializers.CharField(help_text="The machine type's slug")
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()
    profiles = serializers.ListField(child=serializers.CharField(), help_text="Offered profiles that run on it")
    cpu = RangeOut(help_text="vCPU a notebook of this type may ask for")
    mem = RangeOut(help_text="MB a notebook of this type may ask for")
    guarantee = serializers.CharField(help_text="What a notebook is guaranteed of its limits")
    extended = _ExtendedOut(many=True)
    nodes = serializers.IntegerField(help_text="Ready, schedulable nodes of the type")
    free_summary = serializers.CharField()
    presets_not_schedulable = serializers.ListField(child=serializers.CharField())


class _QuotaLeftOut(serializers.Serializer):
    resource = serializers.CharField()
    left = serializers.CharField()


class NamespaceQuotaOut(ItemSerializer):
    namespace = serializers.CharField()
    summary = serializers.CharField()
    left = _QuotaLeftOut(many=True)


def guarantee_text(machine_type: MachineType) -> str:
    if machine_type.guarantee_policy == GuaranteePolicy.RATIO and machine_type.guarantee_ratio is not None:
        return f"Guaranteed {plain(machine_type.guarantee_ratio * 100)}% of the CPU and memory limits."
    if machine_type.guarantee_policy == GuaranteePolicy.EXPLICIT:
        parts = []
        if machine_type.cpu_guarantee is not None:
            parts.append(f"{plain(machine_type.cpu_guarantee)} vCPU")
        if machine_type.mem_guarantee is not None:
            parts.append(f"{machine_type.mem_guarantee} MB")
        return f"Guaranteed {' and '.join(parts)}; up to the limits when the node has room."
    return "Guaranteed its CPU and memory limits."


def _smallest_counts(machine_type: MachineType, ceiling: int | None) -> dict[str, int]:
    return {
        name: counts[0]
        for name in machine_type.gpu_resources
        if (counts := allowed_counts(machine_type, name, ceiling))
    }


def _fits(
    capacity: MachineTypeCapacity,
    machine_type: MachineType,
    *,
    cpu: Decimal,
    mem_mb: int,
    extended: Mapping[str, int],
) -> bool:
    cpu_guarantee, mem_guarantee = guarantees(machine_type, cpu=cpu, mem_mb=mem_mb)
    requests, _ = notebook_asks(
        cpu=cpu, mem_mb=mem_mb, cpu_guarantee=cpu_guarantee, mem_guarantee_mb=mem_guarantee, extended=extended
    )
    return capacity.fits(
        cpu=requests[CPU], memory=requests[MEMORY], extended={k: v for k, v in requests.items() if "/" in k}
    )


def machine_type_item(
    machine_type: MachineType,
    *,
    bounds: Mapping[str, Bound],
    derived: _Derived,
    profiles: tuple[str, ...],
    presets: Iterable[Any],
    ceiling: int | None,
) -> MachineTypeItem:
    capacity = derived.capacity(machine_type)
    smallest = _smallest_counts(machine_type, ceiling)
    low_cpu, low_mem = bounds["cpu"].min, int(bounds["mem"].min)
    extended = tuple(
        ExtendedItem(
            resource=name,
            field=count_field(name),
            label=resource_label(name),
            counts=tuple(
                CountItem(
                    count=count,
                    fits_now=derived.fits(
                        machine_type, cpu=low_cpu, mem_mb=low_mem, extended={**smallest, name: count}
                    ),
                )
                for count in allowed_counts(machine_type, name, ceiling)
            ),
            free=capacity.free.get(name, 0) // 1000,
            total=capacity.total.get(name, 0) // 1000,
        )
        for name in machine_type.gpu_resources
    )
    not_schedulable = tuple(
        preset.slug
        for preset in presets
        if preset_fits(preset, bounds)
        and not derived.fits(machine_type, cpu=Decimal(preset.cpu), mem_mb=int(preset.mem), extended=smallest)
    )
    return MachineTypeItem(
        id=machine_type.slug,
        label=machine_type.display_name,
        description=" ".join(
            text for text in (lifecycle.deprecation_notice(machine_type), machine_type.description) if text
        ),
        profiles=profiles,
        cpu=Range(min=float(bounds["cpu"].min), max=float(bounds["cpu"].max)),
        mem=Range(min=int(bounds["mem"].min), max=int(bounds["mem"].max)),
        guarantee=guarantee_text(machine_type),
        extended=extended,
        nodes=len(capacity.nodes),
        free_summary=derived.summary(machine_type),
        presets_not_schedulable=not_schedulable,
    )


def _shown_in_form(resource: str) -> bool:
    """What a notebook draws on: CPU, memory, pods and extended resources, not Secrets or claims."""
    base = resource.split(".", 1)[1] if resource.startswith(("requests.", "limits.")) else resource
    return base in (CPU, MEMORY, "pods", "count/pods") or ("/" in base and not base.startswith("count/"))


def quota_item(namespace: str, compute: NamespaceCompute) -> NamespaceQuotaItem | None:
    left = tuple(
        QuotaLeftItem(resource=name, left=amount_text(name, max(0, amount)))
        for name, amount in sorted(compute.quota_left.items())
        if _shown_in_form(name)
    )
    if not left:
        return None
    summary = f"Quota left in {namespace}: " + ", ".join(f"{item.left} ({item.resource})" for item in left)
    return NamespaceQuotaItem(namespace=namespace, summary=summary, left=left)


# --- The kind ----------------------------------------------------------------------


def _field_of(resource: str, counts: Mapping[str, int]) -> str:
    """The form field a refusal about one resource (``cpu``, ``requests.memory``, ``pods``) belongs to."""
    base = resource.split(".", 1)[1] if resource.startswith(("requests.", "limits.")) else resource
    if base == CPU:
        return CPU_FIELD
    if base == MEMORY:
        return MEMORY_FIELD
    if base in counts:
        return count_field(base)
    return "k8s_namespace"


class MachineTypeKind(OfferedKind):
    name = "machine_type"
    template = "spawning/offers/machine_type.html"
    choice_fields = (FIELD,)

    def load(self) -> MachineTypes:
        enabled = tuple(MachineType.objects.filter(enabled=True))
        types = tuple(t for t in enabled if lifecycle.offered(t))
        profile_types: dict[int, set[int]] = {}
        if types:
            through = Profile.machine_types.through
            for profile_id, type_id in through.objects.values_list("profile_id", "machinetype_id"):
                profile_types.setdefault(profile_id, set()).add(type_id)
        return MachineTypes(
            types=types,
            by_slug={t.slug: t for t in types},
            profile_types={pk: frozenset(type_ids) for pk, type_ids in profile_types.items()},
            limited_namespaces=limited_namespaces(),
            retired=lifecycle.retired_choices(
                enabled, what="machine type", key=lambda t: t.slug, label=lambda t: t.display_name
            ),
        )

    def successors(self, ctx: OfferContext) -> dict[str, Mapping[str, lifecycle.Retired]]:
        return {FIELD: ctx.snapshot.kinds[self.name].retired}

    def output_fields(self) -> dict[str, Out]:
        return {
            "machine_types": Out(MachineTypeOut, optional=True),
            "namespace_quotas": Out(NamespaceQuotaOut, optional=True),
        }

    def volatile_key(self, snapshot: Any) -> Hashable:
        # Free capacity and quota use change without the generation: a kept reply lives
        # as long as the capacity it showed (CAPACITY_MAX_AGE_SECONDS), its quota figures
        # read in the same request.
        loaded: MachineTypes = snapshot.kinds[self.name]
        return _recent_capacity().digest if loaded.types else None

    def offer(self, ctx: OfferContext) -> None:
        from spawning.offers.namespace import allowed_namespaces

        loaded: MachineTypes = ctx.snapshot.kinds[self.name]
        ctx.offered["machine_types"] = []
        ctx.offered["namespace_quotas"] = []
        if not loaded.types:
            return
        usable = [
            (machine_type, bounds)
            for machine_type in loaded.types
            if may_use_machine_type(ctx.access, machine_type)
            and (bounds := machine_type_bounds(machine_type, ctx.bounds)) is not None
        ]
        if not usable:
            return
        # Nodes and pods change without changing the generation: read apart from the snapshot.
        read = _recent_capacity()
        profiles = ctx.snapshot.kinds["profile"].by_slug
        offered_profiles = [profiles[item.slug] for item in ctx.offered.get("profiles") or () if item.slug in profiles]
        presets = [preset for preset, _ in ctx.snapshot.kinds["resources"]]
        ceiling = gpu_ceiling(ctx.access)
        ctx.offered["machine_types"] = [
            machine_type_item(
                machine_type,
                bounds=bounds,
                derived=read.derived,
                profiles=tuple(p.slug for p in offered_profiles if runs_profile(loaded, p, machine_type)),
                presets=presets,
                ceiling=ceiling,
            )
            for machine_type, bounds in usable
        ]
        limited = sorted({n.name for n in allowed_namespaces(ctx.snapshot, ctx.access)} & loaded.limited_namespaces)
        if limited:
            ctx.offered["namespace_quotas"] = [
                item
                for name in limited
                if name in read.compute and (item := quota_item(name, read.compute[name])) is not None
            ]

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        types = ctx.offered["machine_types"]
        profile = selected.get("profile", "")
        return {FIELD: {t.id for t in types if profile in t.profiles} | {""}}

    def preselect(self, ctx: OfferContext, remembered: Mapping[str, Any], selected: dict[str, str]) -> None:
        types: list[MachineTypeItem] = ctx.offered["machine_types"]
        # Nothing offered, nothing preselected: the form data stays as it was before machine types.
        if not types:
            return
        super().preselect(ctx, remembered, selected)
        loaded: MachineTypes = ctx.snapshot.kinds[self.name]
        profile = ctx.snapshot.kinds["profile"].by_slug.get(selected.get("profile", ""))
        if not selected[FIELD] and profile is not None and profile.pk in loaded.profile_types:
            # This profile runs only on some machine types: start from the first it may use.
            selected[FIELD] = next((t.id for t in types if profile.slug in t.profiles), "")
        for item in types:
            for extended in item.extended:
                counts = {str(c.count) for c in extended.counts}
                value = text(remembered.get(extended.field))
                if item.id == selected[FIELD] and value in counts:
                    selected[extended.field] = value

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        types = data.get("machine_types") or []
        if not types:
            return {"machine_types": None}
        chosen = pick_item(types, "id", selected.get(FIELD), fallback_to_first=False)
        if chosen is not None:
            # The number inputs start within the chosen type's sizes (spawning/offers/resources.py).
            state["number_bounds"] = {"cpu": chosen["cpu"], "mem": chosen["mem"]}
        namespace = pick_item(data.get("namespaces") or [], "name", selected.get("k8s_namespace"))
        presets = {p["slug"]: p["display_name"] for p in data.get("presets") or []}
        cards = [
            {
                "item": item,
                "chosen": chosen is not None and item["id"] == chosen["id"],
                "counts": [
                    {
                        **extended,
                        "selected": text(selected.get(extended["field"]))
                        or (str(extended["counts"][0]["count"]) if extended["counts"] else ""),
                    }
                    for extended in item["extended"]
                ],
                "not_schedulable": [presets.get(slug, slug) for slug in item["presets_not_schedulable"]],
            }
            for item in types
        ]
        return {
            "machine_types": {
                "cards": cards,
                "none_chosen": chosen is None,
                "quotas": data.get("namespace_quotas") or [],
                "namespace": namespace["name"] if namespace else "",
            }
        }

    def validate(self, v: Validation) -> None:
        loaded: MachineTypes = v.snapshot.kinds[self.name]
        slug = v.option(FIELD)
        if loaded.types or slug:
            v.choices[FIELD] = slug
        restricted = v.profile is not None and v.profile.pk in loaded.profile_types
        if not slug:
            if restricted and v.profile is not None:
                v.refuse(FIELD, f"The profile '{v.profile.slug}' runs only on some machine types: choose one.")
            return
        if lifecycle.refuse_retired(v, FIELD, slug, loaded.retired):
            return
        machine_type = loaded.by_slug.get(slug)
        if machine_type is None:
            v.refuse(FIELD, f"There is no machine type '{slug[:63]}' available.")
            return
        if not may_use_machine_type(v.access, machine_type):
            v.refuse(FIELD, f"You may not use the machine type '{slug}'.")
            return
        if not runs_profile(loaded, v.profile, machine_type) and v.profile is not None:
            v.refuse(FIELD, f"The profile '{v.profile.slug}' does not run on the machine type '{slug}'.")
            return
        bounds = machine_type_bounds(machine_type, v.bounds)
        if bounds is None:
            v.refuse(FIELD, f"No CPU and memory you may ask for fits the machine type '{slug}'.")
            return
        # Before the resources kind reads the numbers: they must lie within the type's sizes too.
        v.bounds.update(bounds)
        counts = self._counts(v, machine_type)
        if counts is not None:
            v.decided[self.name] = (machine_type, counts)

    def _counts(self, v: Validation, machine_type: MachineType) -> dict[str, int] | None:
        ceiling = gpu_ceiling(v.access)
        counts: dict[str, int] = {}
        for name in machine_type.gpu_resources:
            field_name = count_field(name)
            allowed = allowed_counts(machine_type, name, ceiling)
            raw = v.option(field_name)
            if not allowed:
                v.refuse(
                    field_name, f"You may not ask for {resource_label(name)} on the machine type '{machine_type.slug}'."
                )
                return None
            if raw == "":
                count = allowed[0]
            elif not raw.isdigit():
                v.refuse(field_name, f"'{raw[:20]}' is not a whole number of {resource_label(name)}.")
                return None
            else:
                count = int(raw)
            if count not in allowed:
                choices = ", ".join(str(c) for c in allowed)
                v.refuse(
                    field_name, f"{count} {resource_label(name, count)} is not a count you may ask for ({choices})."
                )
                return None
            counts[name] = count
            v.choices[field_name] = str(count)
        total = sum(counts.values())
        if ceiling is not None and total > ceiling:
            first = count_field(next(iter(counts)))
            v.refuse(first, f"{total} GPUs in all is more than the {ceiling} you may ask for.")
            return None
        return counts

    def validate_together(self, v: Validation) -> None:
        loaded: MachineTypes = v.snapshot.kinds[self.name]
        decided: tuple[MachineType, dict[str, int]] | None = v.decided.get(self.name)
        namespace = v.namespace
        limited = namespace is not None and namespace in loaded.limited_namespaces
        if decided is None and not limited:
            return
        if any(v.refused(name) for name in (FIELD, CPU_FIELD, MEMORY_FIELD, "k8s_namespace")) or any(
            name.startswith(COUNT_FIELD_PREFIX) for name in v.refusals
        ):
            return
        machine_type, counts = decided if decided is not None else (None, {})
        cpu, mem_mb = v.numbers[CPU_FIELD], int(v.numbers[MEMORY_FIELD])
        cpu_guarantee, mem_guarantee = guarantees(machine_type, cpu=cpu, mem_mb=mem_mb)
        requests, limits = notebook_asks(
            cpu=cpu, mem_mb=mem_mb, cpu_guarantee=cpu_guarantee, mem_guarantee_mb=mem_guarantee, extended=counts
        )
        if limited and namespace is not None:
            self._check_namespace(v, namespace, requests=requests, limits=limits, counts=counts)
        if machine_type is None:
            return
        capacity = machine_type_capacity(machine_type, node_capacities())
        extended = {name: amount for name, amount in requests.items() if name in counts}
        if not capacity.fits(cpu=requests[CPU], memory=requests[MEMORY], extended=extended):
            asked = ", ".join(amount_text(name, amount) for name, amount in requests.items())
            v.refuse(
                FIELD,
                f"This notebook ({asked}) fits no node of the machine type '{machine_type.slug}' now. "
                f"{free_summary(capacity)}.",
            )
            return
        v.plan["machine_type"] = MachineTypeChoice(
            slug=machine_type.slug,
            node_selector=dict(machine_type.node_selector or {}),
            tolerations=list(machine_type.tolerations or []),
            node_affinity_required=list((machine_type.node_affinity or {}).get("nodeSelectorTerms") or []),
            extended=tuple((name, count) for name, count in sorted(counts.items()) if count > 0),
            cpu_guarantee=cpu_guarantee,
            mem_guarantee_mb=mem_guarantee,
        )

    def _check_namespace(
        self,
        v: Validation,
        namespace: str,
        *,
        requests: dict[str, int],
        limits: dict[str, int],
        counts: Mapping[str, int],
    ) -> None:
        # Two queries, only for a namespace that has a quota or a limit range.
        compute = namespace_compute([namespace]).get(namespace) or NamespaceCompute(
            quota_left={}, container_limits=ContainerLimits()
        )
        requests, limits = apply_limit_range(compute.container_limits, requests=requests, limits=limits)
        for resource, reason in limit_range_refusals(compute.container_limits, requests=requests, limits=limits):
            v.refuse(
                _field_of(resource, counts),
                f"The LimitRange of the namespace '{namespace}' does not allow this {resource}: "
                f"{_readable(resource, reason)}.",
            )
        asks = {f"requests.{k}": a for k, a in requests.items()} | {f"limits.{k}": a for k, a in limits.items()}
        asks |= {"pods": 1000, "count/pods": 1000}
        for name in quota_refusals(compute.quota_left, requests=requests, limits=limits):
            left = max(0, compute.quota_left[name])
            v.refuse(
                _field_of(name, counts),
                f"The quota of the namespace '{namespace}' has {amount_text(name, left)} of {name} left; "
                f"this notebook needs {amount_text(name, asks.get(name, 0))}.",
            )

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        choice = plan.machine_type
        if choice is None:
            return
        reply.cpu_guarantee = float(choice.cpu_guarantee)
        reply.mem_guarantee = f"{choice.mem_guarantee_mb}M"
        traits: dict[str, Any] = {
            "cpu_guarantee": float(choice.cpu_guarantee),
            "cpu_limit": float(plan.cpu),
            "mem_guarantee": f"{choice.mem_guarantee_mb}M",
            "mem_limit": f"{plan.mem_mb}M",
        }
        if choice.node_selector:
            traits["node_selector"] = dict(choice.node_selector)
        if choice.tolerations:
            traits["tolerations"] = [dict(t) for t in choice.tolerations]
        if choice.node_affinity_required:
            traits["node_affinity_required"] = [dict(t) for t in choice.node_affinity_required]
        if choice.extended:
            traits["extra_resource_guarantees"] = {name: str(count) for name, count in choice.extended}
            traits["extra_resource_limits"] = {name: str(count) for name, count in choice.extended}
        reply.machine_type_traits.update(traits)


KIND = MachineTypeKind()
