"""What operators see of spawns: every /prespawn and /poststop, read-only, and users' remembered choices."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from spawning.models import RememberedChoices, SpawnRecord


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class ReadOnlyAdmin(admin.ModelAdmin):
    """A history: nothing here may be added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _DistinctValueFilter(admin.SimpleListFilter):
    """Filter by the values of one column that actually appear in the records (the first few hundred, alphabetically)."""

    field_name = ""
    limit = 200

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = (
            SpawnRecord.objects.exclude(**{self.field_name: ""})
            .order_by(self.field_name)
            .values_list(self.field_name, flat=True)
            .distinct()[: self.limit]
        )
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


class ProfileFilter(_DistinctValueFilter):
    """Spawns of one profile."""

    title = "profile"
    parameter_name = "profile"
    field_name = "profile"


class UserFilter(_DistinctValueFilter):
    """Spawns of one user."""

    title = "user"
    parameter_name = "username"
    field_name = "username"


@admin.register(SpawnRecord)
class SpawnRecordAdmin(ReadOnlyAdmin):
    """Who asked for what, what was made, and how it ended."""

    list_display = ("created_at", "username", "server_label", "result", "profile", "namespace", "duration_ms")
    list_filter = ("result", UserFilter, ProfileFilter, "created_at")
    search_fields = ("username", "server_name", "pod_name", "namespace", "service_account", "message")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 100
    show_full_result_count = False
    fields = (
        "created_at",
        "result",
        "message",
        "username",
        "server_name",
        "pod_name",
        "groups",
        "profile",
        "namespace",
        "service_account",
        "iam_role_arn",
        "duration_ms",
        "choices_pretty",
        "objects_pretty",
        "reply_pretty",
    )
    readonly_fields = fields

    @admin.display(description="server", ordering="server_name")
    def server_label(self, obj: SpawnRecord) -> str:
        return obj.server_name or "(default)"

    @admin.display(description="choices")
    def choices_pretty(self, obj: SpawnRecord) -> str:
        return _pretty_json(obj.choices)

    @admin.display(description="cluster objects")
    def objects_pretty(self, obj: SpawnRecord) -> str:
        return _pretty_json(obj.cluster_objects)

    @admin.display(description="reply to the hub")
    def reply_pretty(self, obj: SpawnRecord) -> str:
        return _pretty_json(obj.reply)


@admin.register(RememberedChoices)
class RememberedChoicesAdmin(ReadOnlyAdmin):
    """The choices each user's server form starts from next time."""

    list_display = ("username", "server_label", "updated_at")
    search_fields = ("username", "server_name")
    ordering = ("username", "server_name")
    fields = ("username", "server_name", "updated_at", "choices_pretty")
    readonly_fields = fields

    @admin.display(description="server", ordering="server_name")
    def server_label(self, obj: RememberedChoices) -> str:
        return obj.server_name or "(default)"

    @admin.display(description="choices")
    def choices_pretty(self, obj: RememberedChoices) -> str:
        return _pretty_json(obj.choices)
