"""What the cluster can run now, per machine type and per namespace, from the stored inventory.

``compute_snapshot`` reads the inventory in a fixed number of queries (nodes,
the per-node sums of the pods' requests, quotas, limit ranges, machine types),
however many nodes and pods there are; everything after that is pure. All
amounts are milli-units (see ``kube.quantity``): 1 vCPU is 1000, 1 byte is 1000.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inventory.models import ClusterNode, LimitRange, MachineType, NodeUsage, ResourceQuota
from inventory.scheduling import affinity_matches, selector_matches, untolerated_taints
from kube.quantity import QuantityError, milli, milli_map

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"

Amounts = dict[str, int]


@dataclass(frozen=True)
class NodeCapacity:
    """One node: where it is, and what is free on it."""

    name: str
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]
    allocatable: Mapping[str, int]
    used: Mapping[str, int]
    schedulable: bool

    @property
    def free(self) -> Amounts:
        return {name: max(0, amount - self.used.get(name, 0)) for name, amount in self.allocatable.items()}

    def fits(self, request: Mapping[str, int]) -> bool:
        """Whether a pod asking ``request`` (plus one pod slot) fits in what is free."""
        free = self.free
        asks = {PODS: 1000, **request}
        # A node that does not report a resource has none of it (pods only if it reports no limit).
        return all(
            amount <= 0 or free.get(name, 0 if name != PODS or PODS in self.allocatable else amount) >= amount
            for name, amount in asks.items()
        )


@dataclass(frozen=True)
class Largest:
    """The largest notebook one node can take now."""

    node: str
    cpu: int
    memory: int
    extended: Mapping[str, int]


@dataclass(frozen=True)
class MachineTypeCapacity:
    """What one machine type can run now."""

    slug: str
    nodes: tuple[NodeCapacity, ...]
    extended_resources: tuple[str, ...]
    total: Mapping[str, int] = field(default_factory=dict)
    free: Mapping[str, int] = field(default_factory=dict)
    largest: Largest | None = None

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def fits(self, *, cpu: int, memory: int, extended: Mapping[str, int] | None = None) -> bool:
        """Whether a notebook requesting these milli-amounts fits on some node of this type."""
        request = {CPU: cpu, MEMORY: memory, **(extended or {})}
        return any(node.fits(request) for node in self.nodes)


def node_matches(node: NodeCapacity, machine_type: MachineType) -> bool:
    """Whether the scheduler may put this machine type's notebooks on the node."""
    return (
        node.schedulable
        and selector_matches(machine_type.node_selector or {}, node.labels)
        and affinity_matches(machine_type.node_affinity or None, node_name=node.name, labels=node.labels)
        and not untolerated_taints(node.taints, machine_type.tolerations or [])
    )


def machine_type_capacity(machine_type: MachineType, nodes: Iterable[NodeCapacity]) -> MachineTypeCapacity:
    matching = tuple(node for node in nodes if node_matches(node, machine_type))
    extended = tuple(machine_type.gpu_resources)
    total = {name: sum(node.allocatable.get(name, 0) for node in matching) for name in extended}
    free = {name: sum(node.free.get(name, 0) for node in matching) for name in extended}
    return MachineTypeCapacity(
        slug=machine_type.slug,
        nodes=matching,
        extended_resources=extended,
        total=total,
        free=free,
        largest=largest_notebook(machine_type, matching),
    )


def largest_notebook(machine_type: MachineType, nodes: Iterable[NodeCapacity]) -> Largest | None:
    """The node with the most free GPUs (then CPU, then memory), within the machine type's own bounds.

    Sizes are what a notebook may *request*; a node without a free pod slot takes none.
    """
    cpu_cap = milli(machine_type.max_cpu) if machine_type.max_cpu is not None else None
    mem_cap = machine_type.max_mem * 1_000_000 * 1000 if machine_type.max_mem is not None else None
    allowed = {name: max(counts) * 1000 for name, counts in (machine_type.extended_resources or {}).items() if counts}
    best: Largest | None = None
    for node in nodes:
        if not node.fits({}):
            continue
        free = node.free
        cpu = min(free.get(CPU, 0), cpu_cap) if cpu_cap is not None else free.get(CPU, 0)
        memory = min(free.get(MEMORY, 0), mem_cap) if mem_cap is not None else free.get(MEMORY, 0)
        extended = {name: min(free.get(name, 0), cap) // 1000 * 1000 for name, cap in allowed.items()}
        candidate = Largest(node=node.name, cpu=cpu, memory=memory, extended=extended)
        if best is None or _size(candidate) > _size(best):
            best = candidate
    return best


def _size(largest: Largest) -> tuple[int, int, int]:
    return (sum(largest.extended.values()), largest.cpu, largest.memory)


# --- Namespaces: quota and limit ranges ------------------------------------


def quota_left(quotas: Iterable[Mapping[str, Any]]) -> Amounts:
    """hard minus used per quota resource, the tightest of the namespace's quotas winning.

    ``cpu`` and ``memory`` in a quota mean ``requests.cpu`` and ``requests.memory``.
    """
    left: Amounts = {}
    for quota in quotas:
        hard, used = milli_map(quota.get("hard")), milli_map(quota.get("used"))
        for name, amount in hard.items():
            canonical = f"requests.{name}" if name in (CPU, MEMORY) else name
            room = amount - used.get(name, 0)
            left[canonical] = min(left.get(canonical, room), room)
    return left


def quota_refusals(left: Mapping[str, int], *, requests: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
    """The quota resources one more pod with these (milli) requests and limits would exceed."""
    asks: Amounts = {PODS: 1000, "count/pods": 1000}
    for name, amount in requests.items():
        asks[f"requests.{name}"] = amount
    for name, amount in limits.items():
        asks[f"limits.{name}"] = amount
    return sorted(name for name, amount in asks.items() if name in left and amount > left[name])


@dataclass(frozen=True)
class ContainerLimits:
    """What a LimitRange says about containers, merged over a namespace's LimitRanges (milli-units)."""

    default: Amounts = field(default_factory=dict)
    default_request: Amounts = field(default_factory=dict)
    min: Amounts = field(default_factory=dict)
    max: Amounts = field(default_factory=dict)
    max_ratio: Amounts = field(default_factory=dict)


def container_limits(limit_ranges: Iterable[Sequence[Mapping[str, Any]]]) -> ContainerLimits:
    """The Container items of a namespace's LimitRanges.

    The apiserver checks every LimitRange, so the tightest min and max hold; for
    defaults the LimitRanger applies each range in turn and the first to set a
    value keeps it.
    """
    merged = ContainerLimits()
    for items in limit_ranges:
        for item in items:
            if item.get("type") != "Container":
                continue
            for name, amount in milli_map(item.get("default")).items():
                merged.default.setdefault(name, amount)
            for name, amount in milli_map(item.get("defaultRequest")).items():
                merged.default_request.setdefault(name, amount)
            for name, amount in milli_map(item.get("min")).items():
                merged.min[name] = max(merged.min.get(name, amount), amount)
            for name, amount in milli_map(item.get("max")).items():
                merged.max[name] = min(merged.max.get(name, amount), amount)
            for name, raw in (item.get("maxLimitRequestRatio") or {}).items():
                try:
                    ratio = milli(raw)
                except QuantityError:
                    continue
                merged.max_ratio[name] = min(merged.max_ratio.get(name, ratio), ratio)
    return merged


def apply_limit_range(
    limits_of: ContainerLimits, *, requests: Mapping[str, int], limits: Mapping[str, int]
) -> tuple[Amounts, Amounts]:
    """A container's requests and limits as the apiserver will store them.

    First the API's own defaulting (a limit with no request makes the request
    equal to the limit), then the LimitRanger: each resource a container leaves
    out gets the range's default limit and default request.
    """
    new_requests, new_limits = dict(requests), dict(limits)
    for name, amount in limits.items():
        new_requests.setdefault(name, amount)
    for name, amount in limits_of.default.items():
        new_limits.setdefault(name, amount)
    for name, amount in limits_of.default_request.items():
        new_requests.setdefault(name, amount)
    return new_requests, new_limits


def limit_range_refusals(
    limits_of: ContainerLimits, *, requests: Mapping[str, int], limits: Mapping[str, int]
) -> list[tuple[str, str]]:
    """(resource, reason) for each LimitRange rule a container (after defaults) breaks."""
    refusals: list[tuple[str, str]] = []
    # The apiserver validates this after the LimitRanger: a default limit below the request fails the pod.
    for name, request in sorted(requests.items()):
        if name in limits and request > limits[name]:
            refusals.append((name, f"request {request}m is above the limit {limits[name]}m"))
    for name, low in sorted(limits_of.min.items()):
        if requests.get(name, 0) < low:
            refusals.append((name, f"request {requests.get(name, 0)}m is below the minimum {low}m"))
        if name in limits and limits[name] < low:
            refusals.append((name, f"limit {limits[name]}m is below the minimum {low}m"))
    for name, high in sorted(limits_of.max.items()):
        if name not in limits:
            refusals.append((name, f"a limit is required (the maximum is {high}m)"))
        elif limits[name] > high:
            refusals.append((name, f"limit {limits[name]}m is above the maximum {high}m"))
    for name, ratio in sorted(limits_of.max_ratio.items()):
        request, limit = requests.get(name, 0), limits.get(name)
        if limit is not None and request > 0 and limit * 1000 > ratio * request:
            refusals.append((name, f"limit/request {limit / request:.3f} is above the allowed {ratio / 1000}"))
    return refusals


@dataclass(frozen=True)
class NamespaceCompute:
    """A namespace's quota left and its container limits."""

    quota_left: Mapping[str, int]
    container_limits: ContainerLimits


# --- Reading the inventory ------------------------------------------------


@dataclass(frozen=True)
class ComputeSnapshot:
    """Everything capacity needs, read at once."""

    nodes: tuple[NodeCapacity, ...]
    machine_types: Mapping[str, MachineTypeCapacity]
    namespaces: Mapping[str, NamespaceCompute]

    def namespace(self, name: str) -> NamespaceCompute:
        return self.namespaces.get(name) or NamespaceCompute(quota_left={}, container_limits=ContainerLimits())


def node_capacities() -> tuple[NodeCapacity, ...]:
    """Every present node with its use: two queries, one row per node, whatever the number of pods."""
    # The sync keeps these sums as pods come and go (inventory.sync, NodeUsage): one row
    # per node, where summing the PodRequest rows cost a GROUP BY over every pod.
    used: dict[str, Amounts] = {
        node_name: {str(k): int(v) for k, v in (amounts or {}).items()}
        for node_name, amounts in NodeUsage.objects.values_list("node_name", "used")
    }
    # Plain tuples, not model instances: at 500 nodes building the instances was a sixth of the snapshot.
    nodes = ClusterNode.objects.filter(missing_since__isnull=True).values_list(
        "name", "labels", "taints", "allocatable", "ready", "unschedulable"
    )
    return tuple(
        NodeCapacity(
            name=name,
            labels=labels or {},
            taints=taints or [],
            allocatable={str(k): int(v) for k, v in (allocatable or {}).items()},
            used=used.get(name, {}),
            schedulable=ready and not unschedulable,
        )
        for name, labels, taints, allocatable, ready, unschedulable in nodes.order_by("name")
    )


def namespace_compute(namespaces: Iterable[str] | None = None) -> dict[str, NamespaceCompute]:
    """Quota left and container limits of every namespace that has either (or only of ``namespaces``): two queries."""
    present_quotas = ResourceQuota.objects.filter(missing_since__isnull=True)
    present_ranges = LimitRange.objects.filter(missing_since__isnull=True)
    if namespaces is not None:
        wanted = sorted(set(namespaces))
        present_quotas = present_quotas.filter(namespace__in=wanted)
        present_ranges = present_ranges.filter(namespace__in=wanted)
    quotas: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for namespace, hard, used in present_quotas.values_list("namespace", "hard", "used"):
        quotas[namespace].append({"hard": hard, "used": used})
    ranges: dict[str, list[Sequence[Mapping[str, Any]]]] = defaultdict(list)
    for namespace, items in present_ranges.order_by("name").values_list("namespace", "limits"):
        ranges[namespace].append(items or [])
    return {
        name: NamespaceCompute(
            quota_left=quota_left(quotas.get(name, [])), container_limits=container_limits(ranges.get(name, []))
        )
        for name in quotas.keys() | ranges.keys()
    }


def limited_namespaces() -> frozenset[str]:
    """The namespaces that have a ResourceQuota or a LimitRange now: one query."""
    present = {"missing_since__isnull": True}
    # Unordered: a compound SELECT takes no ORDER BY in its parts (SQLite).
    quota_namespaces = ResourceQuota.objects.filter(**present).order_by().values_list("namespace", flat=True)
    range_namespaces = LimitRange.objects.filter(**present).order_by().values_list("namespace", flat=True)
    return frozenset(quota_namespaces.union(range_namespaces))


def compute_snapshot() -> ComputeSnapshot:
    """Per machine type and per namespace, in five queries."""
    nodes = node_capacities()
    machine_types = {
        machine_type.slug: machine_type_capacity(machine_type, nodes)
        for machine_type in MachineType.objects.filter(enabled=True)
    }
    return ComputeSnapshot(nodes=nodes, machine_types=machine_types, namespaces=namespace_compute())
