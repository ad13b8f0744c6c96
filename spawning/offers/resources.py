"""Resources: the size presets and the notebook's CPU and memory, within the user's bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inventory.models import QUANTITIES, ResourcePreset
from spawning.access import Bound, UserAccess, builtin_bound, effective_bounds, preset_fits
from spawning.offers.base import CUSTOM_PRESET, NumberField, OfferContext, OfferedKind, Out, Validation, parse_number
from spawning.offers.items import ItemSerializer, number, pick_item, text
from spawning.plan import SpawnPlan
from spawning.replies import Range, ReplyBuilder

if TYPE_CHECKING:
    from spawning.snapshot import InventorySnapshot

CPU = NumberField("resources_cpu", "cpu", "CPU")
MEMORY = NumberField("resources_mem", "mem", "Memory")


@dataclass(frozen=True)
class PresetItem:
    slug: str
    display_name: str
    description: str
    default: bool
    # Quantity key → the preset's value (QUANTITIES).
    values: tuple[tuple[str, float | int], ...]

    def __getattr__(self, name: str) -> Any:
        for key, value in self.values:
            if key == name:
                return value
        raise AttributeError(name)


class _PresetFields(ItemSerializer):
    slug = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    default = serializers.BooleanField()


# One number per quantity, whole ones as integers.
PresetOut = type(
    "PresetOut",
    (_PresetFields,),
    {q.key: serializers.IntegerField() if q.whole else serializers.FloatField() for q in QUANTITIES},
)


@extend_schema_field(OpenApiTypes.NUMBER)
class WireNumber(serializers.Field):
    """A number as it is: an integer stays one (``256``, not ``256.0``), as the original sent it."""

    def to_representation(self, value: Any) -> Any:
        return value


class RangeOut(serializers.Serializer):
    min = WireNumber()
    max = WireNumber()


# The range of every quantity this user may ask for.
BoundsOut = type("BoundsOut", (serializers.Serializer,), {q.key: RangeOut() for q in QUANTITIES})


def user_bounds(snapshot: InventorySnapshot, access: UserAccess) -> dict[str, Bound]:
    """The range each of this user's numbers must lie in: the presets', capped by their ceilings."""
    return effective_bounds(access=access, presets=[preset for preset, _ in snapshot.kinds[KIND.name]])


@dataclass(frozen=True)
class NumberState:
    """One bounded number input as the form draws it."""

    name: str
    key: str
    label: str
    unit: str
    step: str
    value: str
    min: str
    max: str

    @property
    def html_id(self) -> str:
        return f"op-{self.name.replace('_', '-')}"


def number_state(
    field: NumberField, data: Mapping[str, Any], selected: Mapping[str, Any], state: Mapping[str, Any]
) -> NumberState:
    """The input for ``field``: the remembered value, else the chosen preset's, else the bound's default."""
    low, high, default = builtin_bound(field.key)
    bounds = {
        "min": low,
        "max": high,
        "default": default,
        **((data.get("bounds") or {}).get(field.key) or {}),
        # A chosen machine type's own sizes (spawning/offers/machine_type.py).
        **((state.get("number_bounds") or {}).get(field.key) or {}),
    }
    preset = state.get("preset_item")
    value = selected.get(field.name)
    if number(value) is None:
        value = preset[field.key] if preset and field.key in preset else bounds["default"]
    return NumberState(
        name=field.name,
        key=field.key,
        label=field.label,
        unit=field.unit,
        step=field.step,
        value=_plain(value),
        min=_plain(bounds.get("min")),
        max=_plain(bounds.get("max")),
    )


def _plain(value: Any) -> str:
    """A number as an input's value: ``1.0`` → ``1``, ``0.250`` → ``0.25``, no exponent."""
    parsed = number(value)
    return "" if parsed is None else format(parsed.normalize(), "f")


def _matches(preset: Mapping[str, Any], selected: Mapping[str, Any], fields: tuple[NumberField, ...]) -> bool:
    """Whether the remembered numbers are the preset's (a field not remembered matches)."""
    for field in fields:
        chosen = number(selected.get(field.name))
        if chosen is not None and field.key in preset and chosen != number(preset[field.key]):
            return False
    return True


class ResourcesKind(OfferedKind):
    name = "resources"
    template = "spawning/offers/resources.html"
    choice_fields = ("resource_preset",)
    number_fields = (CPU, MEMORY)

    def load(self) -> tuple[tuple[ResourcePreset, PresetItem], ...]:
        return tuple(
            (
                p,
                PresetItem(
                    slug=p.slug,
                    display_name=p.display_name,
                    description=p.description,
                    default=p.default,
                    values=tuple((q.key, q.wire(getattr(p, q.key))) for q in QUANTITIES),
                ),
            )
            for p in ResourcePreset.objects.all()
        )

    def output_fields(self) -> dict[str, Out]:
        return {"presets": Out(PresetOut), "bounds": Out(BoundsOut, many=False)}

    def offer(self, ctx: OfferContext) -> None:
        ctx.offered["presets"] = [
            item for preset, item in ctx.snapshot.kinds[self.name] if preset_fits(preset, ctx.bounds)
        ]
        ctx.offered["bounds"] = {
            q.key: Range(min=q.wire(ctx.bounds[q.key].min), max=q.wire(ctx.bounds[q.key].max)) for q in QUANTITIES
        }

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        return {"resource_preset": {p.slug for p in ctx.offered["presets"]} | {CUSTOM_PRESET}}

    def defaults(self, ctx: OfferContext) -> dict[str, str]:
        return {"resource_preset": next((p.slug for p in ctx.offered["presets"] if p.default), "")}

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        from spawning.offers import NUMBER_FIELDS

        presets = data.get("presets") or []
        preset = pick_item(presets, "slug", selected.get("resource_preset"), fallback_to_first=False)
        if text(selected.get("resource_preset")) == CUSTOM_PRESET or (
            preset and not _matches(preset, selected, NUMBER_FIELDS)
        ):
            preset = None
        state["preset_item"] = preset
        return {
            "preset": preset["slug"] if preset else CUSTOM_PRESET,
            "cpu": number_state(CPU, data, selected, state),
            "mem": number_state(MEMORY, data, selected, state),
        }

    def validate(self, v: Validation) -> None:
        from spawning.offers import NUMBER_FIELDS

        preset = v.option("resource_preset")
        presets = [p for p, _ in v.snapshot.kinds[self.name]]
        # The preset only says which button was pressed; the numbers are what count, and are checked below.
        if preset not in ("", CUSTOM_PRESET) and not any(
            p.slug == preset and preset_fits(p, v.bounds) for p in presets
        ):
            v.refuse("resource_preset", f"There is no preset '{preset[:63]}' you may use.")
        v.choices["resource_preset"] = preset
        # Every number field of every kind, here, so all of them are checked before any kind reads one.
        for field in NUMBER_FIELDS:
            v.numbers[field.name] = parse_number(v, field)
        v.plan.update(cpu=v.numbers[CPU.name], mem_mb=int(v.numbers[MEMORY.name]))

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        reply.cpu = float(plan.cpu)
        reply.memory = f"{plan.mem_mb}M"


KIND = ResourcesKind()
