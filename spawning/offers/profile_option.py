"""Profile options: further choices within a profile (KubeSpawner's ``profile_options``), and a value users type.

Each option of the chosen profile is a select of its choices (``profile_option_<profile>__<option>``)
and, when the operators allow an unlisted choice, a text field beside it
(``…__unlisted``) whose value, when given, wins, as in KubeSpawner. A typed value
is checked on the server against the option's regular expression (``re.match``,
as KubeSpawner does). The chosen choice's ``kubespawner_override`` (or the
unlisted one's, with ``{value}`` replaced) is merged over the profile's in the
options' order and sent in the v2 reply: ``image`` as the reply's image, the rest
in ``kubespawner_override``. An option is offered to whoever is offered its profile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from inventory.models import ProfileOption
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation
from spawning.offers.items import ItemSerializer, text
from spawning.plan import ProfileOptionChoice, SpawnPlan
from spawning.replies import ReplyBuilder

# How much of a refused typed value a refusal repeats.
_ECHO = 100


@dataclass(frozen=True)
class ChoiceItem:
    key: str
    display_name: str
    default: bool


@dataclass(frozen=True)
class UnlistedItem:
    field: str
    display_name: str
    validation_message: str


@dataclass(frozen=True)
class ProfileOptionItem:
    profile: str
    slug: str
    field: str
    display_name: str
    choices: tuple[ChoiceItem, ...]
    # The choice preselected when nothing remembered is kept ("" when the option has only an unlisted choice).
    default: str
    unlisted: UnlistedItem | None


class ChoiceOut(ItemSerializer):
    key = serializers.CharField()
    display_name = serializers.CharField()
    default = serializers.BooleanField()


class UnlistedOut(ItemSerializer):
    field = serializers.CharField(help_text="The form field of a typed value; given, it wins over the choice.")
    display_name = serializers.CharField()
    validation_message = serializers.CharField()


class ProfileOptionOut(ItemSerializer):
    profile = serializers.CharField(help_text="The slug of the profile this option belongs to")
    slug = serializers.CharField()
    field = serializers.CharField(help_text="The form field of the chosen key")
    display_name = serializers.CharField()
    choices = ChoiceOut(many=True)
    default = serializers.CharField()
    unlisted = UnlistedOut(allow_null=True)


@dataclass(frozen=True)
class LoadedOption:
    option: ProfileOption
    item: ProfileOptionItem
    # Choice key → its overrides.
    overrides: Mapping[str, Mapping[str, Any]]


def _item(option: ProfileOption, profile_slug: str) -> LoadedOption:
    choices = [c for c in option.choices if isinstance(c, dict)] if isinstance(option.choices, list) else []
    default = option.default_choice()
    items = tuple(
        ChoiceItem(
            key=str(c.get("key", "")),
            display_name=str(c.get("display_name") or c.get("key", "")),
            default=c is default,
        )
        for c in choices
    )
    unlisted = (
        UnlistedItem(
            field=option.unlisted_field_name(profile_slug),
            display_name=option.unlisted_display_name or "Other",
            validation_message=option.unlisted_validation_message,
        )
        if option.unlisted_enabled
        else None
    )
    return LoadedOption(
        option=option,
        item=ProfileOptionItem(
            profile=profile_slug,
            slug=option.slug,
            field=option.field_name(profile_slug),
            display_name=option.display_name,
            choices=items,
            default=str(default.get("key", "")) if default else "",
            unlisted=unlisted,
        ),
        overrides={str(c.get("key", "")): dict(c.get("kubespawner_override") or {}) for c in choices},
    )


def substitute(value: Any, typed: str) -> Any:
    """``{value}`` replaced by the typed value in every text, at any depth.

    A plain replacement rather than KubeSpawner's ``str.format``: other braces in an
    override (a JSON snippet, a shell ``${VAR}``) stay as they are instead of failing the spawn.
    """
    if isinstance(value, str):
        return value.replace("{value}", typed)
    if isinstance(value, dict):
        return {k: substitute(v, typed) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, typed) for v in value]
    return value


def merge_overrides(base: Mapping[str, Any], override: Mapping[str, Any], *, nested: bool = False) -> dict[str, Any]:
    """``override`` over ``base`` as KubeSpawner applies one after the other: mappings merged, the rest replaced.

    Inside a merged mapping ``None`` removes the key, as KubeSpawner's ``recursive_update``
    does; a trait set to ``None`` at the top stays ``None``.
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value, nested=True)
        elif value is None and nested:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def typed_value_refusal(option: ProfileOption, typed: str) -> str | None:
    """Why a typed value is refused, or None."""
    if not option.unlisted_enabled:
        return f"'{option.display_name}' takes no typed value; choose one of its choices."
    regex = option.unlisted_validation_regex
    if regex and not re.match(regex, typed):
        reason = option.unlisted_validation_message or f"It must match {regex}."
        return f"'{typed[:_ECHO]}' is not accepted for '{option.display_name}': {reason}"
    return None


class ProfileOptionKind(OfferedKind):
    name = "profile_option"
    template = "spawning/offers/profile_option.html"

    def load(self) -> Mapping[str, tuple[LoadedOption, ...]]:
        by_profile: dict[str, list[LoadedOption]] = {}
        for option in ProfileOption.objects.select_related("profile").filter(profile__enabled=True):
            by_profile.setdefault(option.profile.slug, []).append(_item(option, option.profile.slug))
        return {slug: tuple(options) for slug, options in by_profile.items()}

    def output_fields(self) -> dict[str, Out]:
        return {"profile_options": Out(ProfileOptionOut, optional=True)}

    def offer(self, ctx: OfferContext) -> None:
        loaded: Mapping[str, tuple[LoadedOption, ...]] = ctx.snapshot.kinds[self.name]
        ctx.offered["profile_options"] = [
            entry.item for profile in ctx.offered["profiles"] for entry in loaded.get(profile.slug, ())
        ]

    def preselect(self, ctx: OfferContext, remembered: Mapping[str, Any], selected: dict[str, str]) -> None:
        # Only options on offer add fields, so a deployment without any keeps its /options data as it was.
        loaded: Mapping[str, tuple[LoadedOption, ...]] = ctx.snapshot.kinds[self.name]
        for profile in ctx.offered["profiles"]:
            for entry in loaded.get(profile.slug, ()):
                item = entry.item
                kept = text(remembered.get(item.field))
                selected[item.field] = kept if kept in entry.overrides else item.default
                if item.unlisted is not None:
                    typed = text(remembered.get(item.unlisted.field))
                    keep = typed and typed_value_refusal(entry.option, typed) is None
                    selected[item.unlisted.field] = typed if keep else ""

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        chosen = state.get("chosen_profile") or {}
        groups: dict[str, list[dict[str, Any]]] = {}
        for option in data.get("profile_options") or []:
            choice = text(selected.get(option["field"])) or option["default"]
            unlisted = option.get("unlisted")
            typed = text(selected.get(unlisted["field"])) if unlisted else ""
            groups.setdefault(option["profile"], []).append({**option, "chosen": choice, "typed": typed})
        return {
            "profile_option_groups": [
                {"profile": slug, "options": options, "shown": slug == chosen.get("slug")}
                for slug, options in groups.items()
            ]
        }

    def validate(self, v: Validation) -> None:
        if v.profile is None:
            return
        loaded: Mapping[str, tuple[LoadedOption, ...]] = v.snapshot.kinds[self.name]
        chosen: list[ProfileOptionChoice] = []
        for entry in loaded.get(v.profile.slug, ()):
            option, item = entry.option, entry.item
            key = v.option(item.field)
            # Read even when not enabled, so a typed value the option does not take is refused, not ignored.
            unlisted_field = option.unlisted_field_name(item.profile)
            typed = v.option(unlisted_field)
            if typed:
                refusal = typed_value_refusal(option, typed)
                if refusal:
                    v.refuse(unlisted_field, refusal)
                    continue
                v.choices[unlisted_field] = typed
                if key in entry.overrides:
                    v.choices[item.field] = key
                overrides = substitute(dict(option.unlisted_kubespawner_override or {}), typed)
                chosen.append(ProfileOptionChoice(option=option.slug, key="", value=typed, overrides=overrides))
                continue
            if not key:
                key = item.default
                if not key:
                    v.refuse(unlisted_field, f"Type a value for '{item.display_name}'.")
                    continue
            if key not in entry.overrides:
                v.refuse(item.field, f"There is no choice '{key[:_ECHO]}' for '{item.display_name}'.")
                continue
            v.choices[item.field] = key
            chosen.append(
                ProfileOptionChoice(option=option.slug, key=key, value="", overrides=dict(entry.overrides[key]))
            )
        if chosen:
            v.plan["profile_options"] = tuple(chosen)

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if not plan.profile_options:
            return
        merged = dict(reply.kubespawner_override or {})
        for choice in plan.profile_options:
            merged = merge_overrides(merged, choice.overrides)
        image = merged.pop("image", None)
        if isinstance(image, str) and image:
            reply.image = image
        reply.kubespawner_override = merged or None


KIND = ProfileOptionKind()
