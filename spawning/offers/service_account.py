"""Service accounts: the notebook's Kubernetes identity and the AWS IAM role it carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from inventory.models import ServiceAccount
from spawning.access import UserAccess, may_use_service_account
from spawning.offers.base import Validation
from spawning.offers.items import ItemSerializer
from spawning.offers.placed import PlacedKind
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


class ServiceAccountKind(PlacedKind):
    name = "service_account"
    choice_fields = ("k8s_service_account",)
    reply_key = "service_accounts"
    serializer = ServiceAccountOut
    what = "service account"

    def rows(self) -> Any:
        return ServiceAccount.objects.offerable()

    def item(self, row: ServiceAccount) -> ServiceAccountItem:
        return _item(row)

    def may_use(self, access: UserAccess, row: ServiceAccount, *, namespaces: list[str]) -> bool:
        return may_use_service_account(access, row, namespaces=namespaces)

    def form(self, data: Mapping[str, Any], selected: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        accounts, chosen = self.in_namespace(data, selected, state)
        return {"service_accounts": accounts, "service_account": chosen}

    def validate(self, v: Validation) -> None:
        account = self.chosen(v)
        if account is not None:
            v.plan["service_account"] = ServiceAccountChoice(
                namespace=account.namespace, name=account.name, role_arn=account.role_arn
            )

    def reply(self, plan: SpawnPlan, reply: ReplyBuilder) -> None:
        if plan.service_account is not None:
            reply.service_account = plan.service_account.name


KIND = ServiceAccountKind()
