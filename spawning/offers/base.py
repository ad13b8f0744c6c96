"""What an offered kind is: the one place a capability of the spawn form and the notebook is declared.

A kind (``OfferedKind``) declares, for one thing a user can be offered and a
notebook can be given:

- ``load``: the rows it needs that are the same for every user, read once per
  inventory generation into the snapshot (spawning/snapshot.py);
- ``offer``: what this user is offered, filtered from the snapshot with its
  access predicate (spawning/access.py), as typed items under its reply keys;
- ``output_fields``: the serializer fields of those reply keys (the /options
  schema is generated from them);
- ``choice_fields`` and ``number_fields``: its form fields; a remembered choice
  is kept while it is still offered, a number is kept within its bounds;
- ``form`` and ``template``: its section of the spawn form;
- ``validate``: how a submitted choice is checked, refusals recorded against
  their field, the accepted choice put on the plan; ``validate_together`` runs
  after every kind's ``validate``, for checks that need all the choices at once
  (the namespace's quota, a node the notebook fits on);
- ``manifests`` and ``reply``: the objects it provisions and its fragment of the
  /prespawn reply.

Every method has a do-nothing default, so a kind declares only what it has.
The registry (spawning/offers/__init__.py) lists the kinds in form order;
everything else iterates over it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from rest_framework import serializers

from inventory.models import QUANTITIES, Profile, Quantity
from spawning.access import Bound, UserAccess
from spawning.lifecycle import Notice, Retired, moved_choice

if TYPE_CHECKING:
    from kube.provision import ConfigSource, ObjectRef
    from spawning.plan import SpawnPlan
    from spawning.replies import ReplyBuilder
    from spawning.snapshot import InventorySnapshot

CUSTOM_PRESET = "custom"
_QUANTITIES = {quantity.key: quantity for quantity in QUANTITIES}


@dataclass(frozen=True)
class NumberField:
    """A bounded number input of the form, and the resource quantity it asks for."""

    name: str
    key: str
    label: str

    @property
    def quantity(self) -> Quantity:
        return _QUANTITIES[self.key]

    @property
    def unit(self) -> str:
        return self.quantity.unit

    @property
    def step(self) -> str:
        return "1" if self.quantity.whole else "any"

    def wire(self, value: Decimal) -> float | int:
        return self.quantity.wire(value)


@dataclass(frozen=True)
class Out:
    """How an offered kind's reply key is serialized: its item serializer, and whether it is a list."""

    serializer: type[serializers.Serializer]
    many: bool = True
    # Sent only when something is offered: a kind added after the original keys keeps
    # the reply of a deployment that does not use it exactly as it was.
    optional: bool = False

    def field(self, key: str) -> serializers.BaseSerializer:
        return self.serializer(many=self.many, source=f"offered.{key}", required=not self.optional)


@dataclass
class OfferContext:
    """One /options request while the kinds fill it in, in registry order."""

    snapshot: InventorySnapshot
    access: UserAccess
    bounds: dict[str, Bound]
    username: str
    server_name: str
    default_namespace: str
    # Filled in by the namespace kind, read by the kinds that live in a namespace.
    namespaces: list[str] = field(default_factory=list)
    # Reply key → the typed items offered under it.
    offered: dict[str, Any] = field(default_factory=dict)
    # Remembered choices that were retired and moved to their successors (spawning/lifecycle.py).
    notices: list[Notice] = field(default_factory=list)


@dataclass
class Validation:
    """One /prespawn validation while the kinds check it, in registry order.

    Refusals are collected, not raised, so the hub hears of every refused field at
    once; a kind whose choice depends on another's (the profile, the namespace)
    skips its own check while that one is refused.
    """

    snapshot: InventorySnapshot
    access: UserAccess
    bounds: dict[str, Bound]
    options: Mapping[str, str]
    username: str
    server_name: str
    pod_name: str
    default_namespace: str
    requested_profile: str
    refusals: dict[str, list[str]] = field(default_factory=dict)
    profile: Profile | None = None
    namespace: str | None = None
    allowed_namespaces: list[str] = field(default_factory=list)
    numbers: dict[str, Decimal] = field(default_factory=dict)
    # SpawnPlan keyword → value; a kind sets only its own.
    plan: dict[str, Any] = field(default_factory=dict)
    # Form field → the normalised value remembered and recorded.
    choices: dict[str, str] = field(default_factory=dict)
    # What a kind decided that its ``validate_together`` (or a later kind) reads.
    decided: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str) -> str:
        value = self.options.get(name, "")
        return value if isinstance(value, str) else str(value)

    def refuse(self, field_name: str, reason: str) -> None:
        self.refusals.setdefault(field_name, []).append(reason)

    def refused(self, field_name: str) -> bool:
        return field_name in self.refusals

    def pick(
        self,
        field_name: str,
        what: str,
        key: str,
        items: Mapping[str, Any],
        allowed: Callable[[Any], bool],
    ) -> Any | None:
        """The offered item ``key`` names, or None with the refusal recorded."""
        # The snapshot holds only offered items: a hidden or missing one is not found at all.
        item = items.get(key)
        # Hidden, missing, unavailable and unknown look the same: operators hide things for a reason.
        if item is None or not item.is_offered:
            self.refuse(field_name, f"There is no {what} '{key[:320]}' available.")
            return None
        if not allowed(item):
            self.refuse(field_name, f"You may not use the {what} '{key[:320]}'.")
            return None
        return item


@dataclass(frozen=True)
class ChoiceSection:
    """A form section offering one item of a list, drawn by spawning/offers/_choice.html.

    ``items`` are the serialized items (``id``, ``label``, ``description``) under ``items_key``
    of the /options data; the form's script shows the chosen one's description.
    """

    slug: str
    legend: str
    label: str
    field: str
    items_key: str
    items: list[dict[str, Any]]
    chosen: dict[str, Any] | None


@dataclass(frozen=True)
class ManifestContext:
    """What building the manifests may need beyond the plan."""

    metadata: Callable[[str, str], dict[str, Any]]
    gaffer_sources: Mapping[ObjectRef, ConfigSource]


class OfferedKind:
    """One offered kind; see the module docstring. Subclasses override what they have."""

    name: ClassVar[str]
    # Its section of the spawn form, drawn in registry order ("" for none).
    template: ClassVar[str] = ""
    # Form fields holding a choice among offered items, remembered while still offered.
    choice_fields: ClassVar[tuple[str, ...]] = ()
    number_fields: ClassVar[tuple[NumberField, ...]] = ()

    def load(self) -> Any:
        """The rows this kind needs that are the same for every user (in the snapshot as ``kinds[name]``)."""
        return None

    def output_fields(self) -> dict[str, Out]:
        """Reply key → how what ``offer`` puts under that key is serialized."""
        return {}

    def volatile_key(self, snapshot: Any) -> Hashable:
        """What ``offer`` reads apart from the snapshot (capacity, quota use), as part of the reply cache's key.

        None when it reads nothing else. /options keeps a reply while its key is
        unchanged (spawning/reply_cache.py), so a kind that shows figures changing
        without the inventory generation must name here what they were read at.
        """
        return None

    def offer(self, ctx: OfferContext) -> None:
        """Put what this user is offered into ``ctx.offered``."""

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        """Choice field → the values a remembered choice may keep; ``selected`` holds earlier kinds' choices."""
        return {}

    def defaults(self, ctx: OfferContext) -> dict[str, str]:
        """Choice field → its initial value when nothing remembered is kept (else "")."""
        return {}

    def successors(self, ctx: OfferContext) -> dict[str, Mapping[str, Retired]]:
        """Choice field → its retired values and what replaces each (spawning/lifecycle.py)."""
        return {}

    def preselect(self, ctx: OfferContext, remembered: Mapping[str, Any], selected: dict[str, str]) -> None:
        """Put last time's choices into ``selected`` where still offered (a retired one moved to its
        successor, with a notice), else the defaults."""
        offered = self.offered_values(ctx, selected)
        defaults = self.defaults(ctx)
        successors = self.successors(ctx)
        for name in self.choice_fields:
            value = remembered.get(name)
            moved = successors.get(name, {}).get(value) if isinstance(value, str) else None
            if isinstance(value, str) and value in offered.get(name, ()):
                selected[name] = value
            elif moved is not None and moved.new in offered.get(name, ()):
                selected[name] = moved.new
                ctx.notices.append(moved_choice(name, moved))
            else:
                selected[name] = defaults.get(name, "")

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """What its template needs, from the /options data and the initial choices; may read earlier kinds' state."""
        return {}

    def validate(self, v: Validation) -> None:
        """Check this kind's choices; record refusals with ``v.refuse``, the accepted choice in ``v.plan``."""

    def validate_together(self, v: Validation) -> None:
        """Checks that need every kind's choices; runs after every kind's ``validate``, refusals and all."""

    def source_refs(self, plan: SpawnPlan) -> list[ObjectRef]:
        """Cluster objects to read before the manifests can be built."""
        return []

    def manifests(self, plan: SpawnPlan, ctx: ManifestContext) -> list[dict[str, Any]]:
        return []

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        """Add this kind's fragment (env, volumes, mounts, keys) to the /prespawn reply."""


def parse_number(v: Validation, number: NumberField) -> Decimal:
    """The submitted value of a number field within its bound; the default when blank or refused."""
    bound = v.bounds[number.key]
    raw = v.option(number.name)
    if raw == "":
        return bound.default
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        value = Decimal("NaN")
    if not value.is_finite():
        v.refuse(number.name, f"'{raw[:50]}' is not a number.")
        return bound.default
    if not bound.contains(value):
        v.refuse(
            number.name,
            f"{raw[:50]} is outside the allowed range {plain(bound.min)} to {plain(bound.max)} {number.unit}.",
        )
        return bound.default
    if number.quantity.whole and value != value.to_integral_value():
        v.refuse(number.name, f"{raw[:50]} must be a whole number of {number.unit}.")
        return bound.default
    return value


def plain(value: Decimal) -> str:
    """``1.00`` → ``1``, ``0.10`` → ``0.1``, never an exponent."""
    return format(value.normalize(), "f")


def ids(items: Any) -> set[str]:
    """The ids of offered items, and "" (no choice)."""
    return {item.id for item in items or ()} | {""}
