"""The dashboard's figures, each read in a fixed number of queries however much there is.

``dashboard_get`` reads everything the admin home shows: spawn records grouped in
the database (one query), the latest refusals and failures (one), the running
notebooks and the spawn records they came from (two), the image lifecycle
entries those notebooks are judged by (one), the nodes and their use (two), the
quotas (one) and the inventory's freshness (one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate
from django.utils import timezone

from inventory.capacity import CPU, MEMORY, node_capacities
from inventory.freshness import Freshness, inventory_freshness
from inventory.lifecycle import ImageRules
from inventory.models import ImageLifecycle, NotebookPod, ResourceQuota
from kube.quantity import QuantityError, milli
from spawning.models import SpawnRecord

NOT_RECORDED = "—"
DEFAULT_DAYS = 14
DEFAULT_PROBLEMS = 10
# A notebook pod starts minutes after its /prespawn; a day leaves room for slow pulls and queued spawns.
SPAWN_LOOKBACK = timedelta(days=1)
RESULTS: tuple[str, ...] = tuple(SpawnRecord.Result.values)
GIB = 2**30


@dataclass(frozen=True)
class SpawnDay:
    """One day's spawn records, by result."""

    day: date
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class SpawnGroup:
    """Spawn records of one profile and machine type over the period, by result."""

    profile: str
    machine_type: str
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class SpawnProblem:
    """A refused or failed spawn, and why."""

    pk: int
    created_at: datetime
    username: str
    server_name: str
    profile: str
    result: str
    result_label: str
    message: str


@dataclass(frozen=True)
class RunningNotebook:
    """A running notebook pod, with the profile and machine type of the spawn that made it."""

    ref: str
    namespace: str
    name: str
    username: str
    server_name: str
    profile: str
    machine_type: str
    image: str
    node_name: str
    cpu: int
    memory: int
    gpu: int
    phase: str
    started_at: datetime | None


@dataclass(frozen=True)
class LifecycleNotebook:
    """A running notebook whose image operators have deprecated or retired: who should move, and to what."""

    username: str
    server_name: str
    image: str
    node_name: str
    started_at: datetime | None
    state: str
    message: str
    # For a retired image, what its notebooks start now ("" when deprecated).
    successor: str


@dataclass(frozen=True)
class Tally:
    """How many running notebooks share one value, and the GPUs they hold."""

    label: str
    notebooks: int
    gpus: float


@dataclass(frozen=True)
class Usage:
    """One resource over the cluster's present nodes: requested by running pods, and allocatable."""

    resource: str
    label: str
    unit: str
    used: float
    capacity: float

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity else 0.0


@dataclass(frozen=True)
class QuotaUse:
    """One resource of one ResourceQuota: used against hard, as the quota states them."""

    namespace: str
    quota: str
    resource: str
    used: str
    hard: str
    used_milli: int | None
    hard_milli: int | None

    @property
    def percent(self) -> float | None:
        if self.used_milli is None or not self.hard_milli:
            return None
        return 100.0 * self.used_milli / self.hard_milli


@dataclass(frozen=True)
class Dashboard:
    """Everything the admin home shows."""

    days: tuple[SpawnDay, ...]
    groups: tuple[SpawnGroup, ...]
    problems: tuple[SpawnProblem, ...]
    notebooks: tuple[RunningNotebook, ...]
    usage: tuple[Usage, ...]
    nodes: int
    schedulable_nodes: int
    quotas: tuple[QuotaUse, ...]
    freshness: Freshness
    on_old_images: tuple[LifecycleNotebook, ...] = ()
    results: tuple[tuple[str, str], ...] = field(default_factory=lambda: tuple(SpawnRecord.Result.choices))

    def notebooks_by(self, attribute: str) -> tuple[Tally, ...]:
        return tally(self.notebooks, attribute)

    @property
    def by_profile(self) -> tuple[Tally, ...]:
        return self.notebooks_by("profile")

    @property
    def by_image(self) -> tuple[Tally, ...]:
        return self.notebooks_by("image")

    @property
    def by_machine_type(self) -> tuple[Tally, ...]:
        return self.notebooks_by("machine_type")


def tally(notebooks: Sequence[RunningNotebook], attribute: str) -> tuple[Tally, ...]:
    """Notebooks counted by one attribute, most first, then by name."""
    counts: dict[str, int] = defaultdict(int)
    gpus: dict[str, int] = defaultdict(int)
    for notebook in notebooks:
        label = getattr(notebook, attribute) or NOT_RECORDED
        counts[label] += 1
        gpus[label] += notebook.gpu
    return tuple(
        Tally(label=label, notebooks=counts[label], gpus=gpus[label] / 1000)
        for label in sorted(counts, key=lambda label: (-counts[label], label))
    )


def spawn_figures(
    *, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> tuple[tuple[SpawnDay, ...], tuple[SpawnGroup, ...]]:
    """Spawn records per day (the last ``days`` days, today included) and per profile and machine type."""
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = (
        SpawnRecord.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"), machine_type=KT("choices__machine_type"))
        .values("day", "result", "profile", "machine_type")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(RESULTS, 0))
    per_group: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(RESULTS, 0))
    for row in rows:
        per_day[row["day"]][row["result"]] = per_day[row["day"]].get(row["result"], 0) + row["n"]
        group = (row["profile"] or NOT_RECORDED, row["machine_type"] or NOT_RECORDED)
        per_group[group][row["result"]] = per_group[group].get(row["result"], 0) + row["n"]
    spawn_days = tuple(
        SpawnDay(day=day, counts=per_day.get(day) or dict.fromkeys(RESULTS, 0))
        for day in (first + timedelta(days=offset) for offset in range(days))
    )
    groups = tuple(
        SpawnGroup(profile=profile, machine_type=machine_type, counts=counts)
        for (profile, machine_type), counts in sorted(
            per_group.items(), key=lambda item: (-sum(item[1].values()), item[0])
        )
    )
    return spawn_days, groups


def spawn_problem_list(*, limit: int = DEFAULT_PROBLEMS) -> tuple[SpawnProblem, ...]:
    """The latest refused and failed spawns, newest first."""
    labels = dict(SpawnRecord.Result.choices)
    rows = (
        SpawnRecord.objects.filter(result__in=[SpawnRecord.Result.REFUSED, SpawnRecord.Result.FAILED])
        .order_by("-created_at", "-id")
        .values_list("pk", "created_at", "username", "server_name", "profile", "result", "message")[:limit]
    )
    return tuple(
        SpawnProblem(
            pk=pk,
            created_at=created_at,
            username=username,
            server_name=server_name,
            profile=profile,
            result=result,
            result_label=labels.get(result, result),
            message=message,
        )
        for pk, created_at, username, server_name, profile, result, message in rows
    )


def running_notebook_list() -> tuple[RunningNotebook, ...]:
    """Running notebook pods, each with the latest provisioned spawn of that pod (or, failing that,
    of that user's server): two queries."""
    pods = list(NotebookPod.objects.order_by("ref"))
    if not pods:
        return ()
    oldest = min(pod.started_at or pod.first_seen for pod in pods)
    records = (
        SpawnRecord.objects.filter(result=SpawnRecord.Result.PROVISIONED, created_at__gte=oldest - SPAWN_LOOKBACK)
        .filter(Q(pod_name__in={pod.name for pod in pods}) | Q(username__in={pod.username for pod in pods}))
        .order_by("created_at", "id")
        .values_list("namespace", "pod_name", "username", "server_name", "profile", "choices")
    )
    by_pod: dict[tuple[str, str], tuple[str, Any]] = {}
    by_server: dict[tuple[str, str], tuple[str, Any]] = {}
    # Ascending, so the latest record of each pod or server is the one kept.
    for namespace, pod_name, username, server_name, profile, choices in records:
        by_pod[(namespace, pod_name)] = (profile, choices)
        by_server[(username, server_name)] = (profile, choices)
    notebooks = []
    for pod in pods:
        # Label values are the names themselves when they fit a label; escaped names never match.
        profile, choices = (
            by_pod.get((pod.namespace, pod.name))
            or by_server.get((pod.username, pod.server_name))
            or (
                "",
                {},
            )
        )
        machine_type = choices.get("machine_type") if isinstance(choices, dict) else None
        notebooks.append(
            RunningNotebook(
                ref=pod.ref,
                namespace=pod.namespace,
                name=pod.name,
                username=pod.username,
                server_name=pod.server_name,
                profile=profile or NOT_RECORDED,
                machine_type=str(machine_type) if machine_type else NOT_RECORDED,
                image=pod.image or NOT_RECORDED,
                node_name=pod.node_name,
                cpu=pod.cpu,
                memory=pod.memory,
                gpu=pod.gpu,
                phase=pod.phase,
                started_at=pod.started_at,
            )
        )
    return tuple(notebooks)


def lifecycle_notebook_list(notebooks: Sequence[RunningNotebook]) -> tuple[LifecycleNotebook, ...]:
    """The running notebooks on a deprecated or retired image (inventory/lifecycle.py), retired first: one query."""
    if not notebooks:
        return ()
    rules = ImageRules.of(ImageLifecycle.objects.all())
    if not rules:
        return ()
    found = []
    for notebook in notebooks:
        state = rules.state(notebook.image)
        if state.deprecated or state.retired:
            found.append(
                LifecycleNotebook(
                    username=notebook.username,
                    server_name=notebook.server_name,
                    image=notebook.image,
                    node_name=notebook.node_name,
                    started_at=notebook.started_at,
                    state=state.lifecycle,
                    message=state.message,
                    successor=state.successor,
                )
            )
    return tuple(sorted(found, key=lambda n: (not n.state == "retired", n.image, n.username, n.server_name)))


def compute_usage() -> tuple[tuple[Usage, ...], int, int]:
    """CPU, memory and each GPU resource: requested by running pods against allocatable, over present nodes.

    Returns the figures, the number of present nodes and how many of them take new pods.
    """
    nodes = node_capacities()
    used: dict[str, int] = defaultdict(int)
    capacity: dict[str, int] = defaultdict(int)
    for node in nodes:
        for name, amount in node.allocatable.items():
            capacity[name] += amount
        for name, amount in node.used.items():
            used[name] += amount
    gpus = sorted(name for name in capacity.keys() | used.keys() if name.endswith("/gpu"))
    figures = [
        Usage(CPU, "CPU", "vCPU", used[CPU] / 1000, capacity[CPU] / 1000),
        Usage(MEMORY, "Memory", "GiB", used[MEMORY] / 1000 / GIB, capacity[MEMORY] / 1000 / GIB),
        *(Usage(name, f"GPU ({name})", "GPU", used[name] / 1000, capacity[name] / 1000) for name in gpus),
    ]
    return tuple(figures), len(nodes), sum(1 for node in nodes if node.schedulable)


def _milli_or_none(value: object) -> int | None:
    try:
        return milli(str(value))
    except (QuantityError, ValueError):
        return None


def quota_use_list() -> tuple[QuotaUse, ...]:
    """Each resource of each present ResourceQuota, by namespace."""
    rows = (
        ResourceQuota.objects.filter(missing_since__isnull=True)
        .order_by("namespace", "name")
        .values_list("namespace", "name", "hard", "used")
    )
    figures = []
    for namespace, name, hard, used in rows:
        hard, used = hard or {}, used or {}
        for resource in sorted(hard):
            figures.append(
                QuotaUse(
                    namespace=namespace,
                    quota=name,
                    resource=resource,
                    used=str(used.get(resource, "0")),
                    hard=str(hard[resource]),
                    used_milli=_milli_or_none(used.get(resource, "0")),
                    hard_milli=_milli_or_none(hard[resource]),
                )
            )
    return tuple(figures)


def dashboard_get(
    *, days: int = DEFAULT_DAYS, problems: int = DEFAULT_PROBLEMS, now: datetime | None = None
) -> Dashboard:
    """Every figure of the admin home."""
    now = now or timezone.now()
    spawn_days, groups = spawn_figures(days=days, now=now)
    usage, nodes, schedulable = compute_usage()
    notebooks = running_notebook_list()
    return Dashboard(
        days=spawn_days,
        groups=groups,
        problems=spawn_problem_list(limit=problems),
        notebooks=notebooks,
        on_old_images=lifecycle_notebook_list(notebooks),
        usage=usage,
        nodes=nodes,
        schedulable_nodes=schedulable,
        quotas=quota_use_list(),
        freshness=inventory_freshness(now=now),
    )
