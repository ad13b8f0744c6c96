"""Service accounts: the notebook's Kubernetes identity and the AWS IAM role it carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from inventory.models import ServiceAccount
from spawning.access import may_use_service_account
from spawning.offers.base import OfferContext, OfferedKind, Out, Validation, ids
from spawning.offers.items import ItemSerializer, pick_item
from spawning.offers.placed import Placed, lean
from spawning.plan import ServiceAccountChoice, SpawnPlan
from spawning.replies import ReplyBuilder


@dataclass(frozen=True)
class ServiceAccountItem:
    id: str
    namespace: str
    name: str
    label: str
    description: str
    role_arn: str
    role_name: str
    role_console_url: str


class ServiceAccountOut(ItemSerializer):
    id = serializers.CharField(help_text="namespace:name")
    namespace = serializers.CharField()
    name = serializers.CharField()
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Field.label at run time; the stubs cannot see that.
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()
    role_arn = serializers.CharField()
    role_name = serializers.CharField()
    role_console_url = serializers.CharField()


def _item(a: ServiceAccount) -> ServiceAccountItem:
    return ServiceAccountItem(
        id=a.key,
        namespace=a.namespace,
        name=a.name,
        label=a.label,
        description=a.description,
        role_arn=a.role_arn,
        role_name=a.role_name,
        role_console_url=a.role_console_url,
    )


class ServiceAccountKind(OfferedKind):
    name = "service_account"
    choice_fields = ("k8s_service_account",)

    def load(self) -> Placed:
        return Placed.of(lean(ServiceAccount.objects.offerable()), _item)

    def output_fields(self) -> dict[str, Out]:
        return {"service_accounts": Out(ServiceAccountOut)}

    def offer(self, ctx: OfferContext) -> None:
        loaded: Placed = ctx.snapshot.kinds[self.name]
        ctx.offered["service_accounts"] = loaded.offered(
            ctx.namespaces, lambda a: may_use_service_account(ctx.access, a, namespaces=ctx.namespaces)
        )

    def offered_values(self, ctx: OfferContext, selected: Mapping[str, str]) -> dict[str, set[str]]:
        # One from another namespace would be a choice the form cannot show.
        chosen = selected.get("k8s_namespace")
        return {"k8s_service_account": ids(a for a in ctx.offered["service_accounts"] if a.namespace == chosen)}

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        accounts = [a for a in data.get("service_accounts") or [] if a.get("namespace") == state["namespace"]]
        chosen = pick_item(accounts, "id", selected.get("k8s_service_account"), fallback_to_first=False)
        return {"service_accounts": accounts, "service_account": chosen}

    def validate(self, v: Validation) -> None:
        account_id = v.option("k8s_service_account")
        v.choices["k8s_service_account"] = account_id
        if not account_id or v.namespace is None:
            return
        loaded: Placed = v.snapshot.kinds[self.name]
        allowed = v.allowed_namespaces
        account = v.pick(
            "k8s_service_account",
            "service account",
            account_id,
            loaded.by_key,
            lambda a: may_use_service_account(v.access, a, namespaces=allowed),
        )
        if account is None:
            return
        if account.namespace != v.namespace:
            v.refuse(
                "k8s_service_account", f"The service account '{account_id}' is not in the namespace '{v.namespace}'."
            )
            return
        v.plan["service_account"] = ServiceAccountChoice(
            namespace=account.namespace, name=account.name, role_arn=account.role_arn
        )

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if plan.service_account is not None:
            reply.service_account = plan.service_account.name


KIND = ServiceAccountKind()
