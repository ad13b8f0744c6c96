"""Profiles: the image and the features (HDFS, Gaffer, Spark) a notebook starts with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from inventory.lifecycle import ImageRules
from inventory.models import ImageLifecycle, Profile
from spawning import lifecycle
from spawning.access import may_use_profile
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation
from spawning.offers.items import ItemSerializer, pick_item
from spawning.plan import SpawnPlan
from spawning.replies import ReplyBuilder


@dataclass(frozen=True)
class ProfileItem:
    slug: str
    display_name: str
    description: str
    image: str
    default: bool
    enable_hdfs: bool
    enable_gaffer: bool
    enable_spark: bool
    # The deprecation of the profile or its image, shown beside it ("" for none).
    notice: str = ""


class ProfileOut(ItemSerializer):
    slug = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    image = serializers.CharField()
    default = serializers.BooleanField()
    enable_hdfs = serializers.BooleanField()
    enable_gaffer = serializers.BooleanField()
    enable_spark = serializers.BooleanField()
    notice = serializers.CharField(
        required=False, help_text="Only when the profile or its image is deprecated, or its image retired."
    )

    def fresh_representation(self, instance: Any) -> Any:
        data = super().fresh_representation(instance)
        # Left out when empty, so the items of a deployment without a lifecycle stay as they were.
        if not data.get("notice"):
            data.pop("notice", None)
        return data


@dataclass(frozen=True)
class Profiles:
    # Enabled profiles that are not retired, with their items, in the operators' order.
    offers: tuple[tuple[Profile, ProfileItem], ...]
    # Every profile, so a disabled one is told apart from an unknown one.
    by_slug: Mapping[str, Profile]
    # Retired profile slug → its successor.
    retired: Mapping[str, lifecycle.Retired]
    # Profile slug → the image it starts: its own, or the successor of a retired image.
    images: Mapping[str, str]


class ProfileKind(OfferedKind):
    name = "profile"
    template = "spawning/offers/profile.html"
    choice_fields = ("profile",)

    def load(self) -> Profiles:
        profiles = list(Profile.objects.all())
        rules = ImageRules.of(ImageLifecycle.objects.all())
        states = {p.slug: rules.state(p.image) for p in profiles}
        images = {
            slug: state.successor if state.retired and state.successor else state.image
            for slug, state in states.items()
        }
        offers = tuple(
            (
                p,
                ProfileItem(
                    slug=p.slug,
                    display_name=p.display_name,
                    description=p.description,
                    image=images[p.slug],
                    default=p.default,
                    enable_hdfs=p.enable_hdfs,
                    enable_gaffer=p.enable_gaffer,
                    enable_spark=p.enable_spark,
                    notice=" ".join(
                        text
                        for text in (lifecycle.deprecation_notice(p), lifecycle.image_notice(states[p.slug]))
                        if text
                    ),
                ),
            )
            for p in profiles
            if p.enabled and lifecycle.offered(p)
        )
        return Profiles(
            offers=offers,
            by_slug={p.slug: p for p in profiles},
            retired=lifecycle.retired_choices(
                profiles, what="profile", key=lambda p: p.slug, label=lambda p: p.display_name
            ),
            images=images,
        )

    def output_fields(self) -> dict[str, Out]:
        return {"profiles": Out(ProfileOut)}

    def offer(self, ctx: OfferContext) -> None:
        loaded: Profiles = ctx.snapshot.kinds[self.name]
        ctx.offered["profiles"] = [item for profile, item in loaded.offers if may_use_profile(ctx.access, profile)]

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        return {"profile": {p.slug for p in ctx.offered["profiles"]}}

    def successors(self, ctx: OfferContext) -> dict[str, Mapping[str, lifecycle.Retired]]:
        return {"profile": ctx.snapshot.kinds[self.name].retired}

    def defaults(self, ctx: OfferContext) -> dict[str, str]:
        profiles = ctx.offered["profiles"]
        chosen = next((p for p in profiles if p.default), profiles[0] if profiles else None)
        return {"profile": chosen.slug if chosen else ""}

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        profile = pick_item(data.get("profiles") or [], "slug", selected.get("profile"))
        state["chosen_profile"] = profile
        return {"profile": profile["slug"] if profile else ""}

    def validate(self, v: Validation) -> None:
        slug = v.requested_profile or v.option("profile")
        loaded: Profiles = v.snapshot.kinds[self.name]
        profile = loaded.by_slug.get(slug) if slug else None
        if profile is None:
            v.refuse("profile", f"There is no profile '{slug[:63]}'." if slug else "Choose a profile.")
        elif lifecycle.refuse_retired(v, "profile", slug, loaded.retired):
            return
        elif profile.is_retired:
            # Its successors break (saved outside the admin's checks): still never started.
            v.refuse("profile", f"The profile '{slug}' is retired.")
        elif not profile.enabled:
            v.refuse("profile", f"The profile '{slug}' is disabled.")
        elif not may_use_profile(v.access, profile):
            v.refuse("profile", f"You may not use the profile '{slug}'.")
        else:
            v.profile = profile
            v.choices["profile"] = profile.slug
            v.plan.update(
                profile_slug=profile.slug,
                image=loaded.images.get(profile.slug, profile.image),
                kubespawner_override={k: val for k, val in profile.kubespawner_override.items() if k != "image"},
            )

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        # The original hub took the image from its own profile list; ours asks
        # the portal, so operators change images in one place.
        reply.image = plan.image
        if plan.kubespawner_override:
            reply.kubespawner_override = dict(plan.kubespawner_override)


KIND = ProfileKind()
