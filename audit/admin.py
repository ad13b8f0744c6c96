"""History in the admin: each tracked object's "History" page, the global list of changes, import runs.

The inventory's admin classes are not touched in the inventory: this module runs
after them (the app comes after ``inventory`` in INSTALLED_APPS) and registers each
tracked model again with the same class plus simple-history's history view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from audit.models import TRACKED_MODELS, ChangeEntry, ImportRun, PortalHistoricalRecords


class HistoryAdminMixin(SimpleHistoryAdmin):
    """The object's "History" page with field-level diffs; read-only, and admin actions recorded too."""

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A past version is shown, never saved back: a discovered row's history leaves out the
        # observed columns, so reverting would blank them.
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_action(self, action: Any) -> tuple[Callable[..., Any], str, str] | None:
        found = super().get_action(action)
        if found is None:
            return None
        func, name, description = found
        return _recorded_action(func, str(description)), name, description


def _recorded_action(func: Callable[..., Any], description: str) -> Callable[..., Any]:
    """An admin action that records what it changed: its ``queryset.update`` sends no signals."""

    def recorded(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
        model = queryset.model
        records = PortalHistoricalRecords.registered.get(model)
        pks = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            response = func(modeladmin, request, queryset)
            if records is not None:
                for row in model._default_manager.filter(pk__in=pks):
                    row._change_reason = f"admin action: {description}"
                    # Unchanged rows write nothing (see PortalHistoricalRecords).
                    records.create_historical_record(row, "~")
        return response

    return recorded


def with_history(model_admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    return type(f"{model_admin_class.__name__}WithHistory", (HistoryAdminMixin, model_admin_class), {})


for _model in TRACKED_MODELS:
    if admin.site.is_registered(_model):
        _current = type(admin.site.get_model_admin(_model))
        admin.site.unregister(_model)
        admin.site.register(_model, with_history(_current))


class ModelFilter(admin.SimpleListFilter):
    """By tracked model, named as the admin names it."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        types = ContentType.objects.get_for_models(*TRACKED_MODELS)
        return [(str(types[m].pk), str(m._meta.verbose_name).capitalize()) for m in TRACKED_MODELS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(content_type_id=self.value())
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _admin_url(content_type: ContentType, view: str, object_id: str) -> str:
    try:
        return reverse(f"admin:{content_type.app_label}_{content_type.model}_{view}", args=[object_id])
    except NoReverseMatch:
        return ""


@admin.register(ChangeEntry)
class ChangeEntryAdmin(ReadOnlyAdmin):
    """Every recorded change, newest first: filter by model, user and date."""

    list_display = ("changed_at", "model_display", "object_link", "action", "who", "reason", "changes_display")
    list_filter = (ModelFilter, ("user", admin.RelatedOnlyFieldListFilter), "action")
    list_select_related = ("content_type", "user")
    date_hierarchy = "changed_at"
    search_fields = ("object_repr", "reason", "username")
    list_per_page = 100
    fields = (
        "changed_at",
        "content_type",
        "object_link",
        "action",
        "who",
        "reason",
        "import_run",
        "changes_display",
    )
    readonly_fields = fields

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The import run's page links to the changes it made.
        return lookup == "import_run__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="model", ordering="content_type")
    def model_display(self, obj: ChangeEntry) -> str:
        model = obj.content_type.model_class()
        return str(model._meta.verbose_name).capitalize() if model else obj.content_type.model

    @admin.display(description="object", ordering="object_repr")
    def object_link(self, obj: ChangeEntry) -> str:
        history = _admin_url(obj.content_type, "history", obj.object_id)
        if not history:
            return obj.object_repr
        return format_html('<a href="{}" title="Its history">{}</a>', history, obj.object_repr)

    @admin.display(description="by", ordering="username")
    def who(self, obj: ChangeEntry) -> str:
        return obj.username or "—"

    @admin.display(description="changes")
    def changes_display(self, obj: ChangeEntry) -> str:
        if not obj.changes:
            return "—"
        return format_html(
            '<ul class="history-changes">{}</ul>',
            format_html_join(
                "",
                "<li><strong>{}</strong>: {} &rarr; {}</li>",
                ((c["field"], c["old"] or "(empty)", c["new"] or "(empty)") for c in obj.changes),
            ),
        )


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    """Every import_config run: what it read, who ran it, and what it did."""

    list_display = ("started_at", "source", "run_by", "dry_run", "status", "created", "updated", "deleted", "changes")
    list_filter = ("status", "dry_run", "helm_values")
    date_hierarchy = "started_at"
    search_fields = ("source", "run_by")
    readonly_fields = (
        "source",
        "helm_values",
        "run_by",
        "dry_run",
        "status",
        "started_at",
        "finished_at",
        "created",
        "updated",
        "deleted",
        "counts_display",
        "changes",
        "report",
        "error",
    )
    exclude = ("counts",)

    @admin.display(description="changes recorded")
    def changes(self, obj: ImportRun) -> str:
        url = reverse("admin:audit_changeentry_changelist") + f"?import_run__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.changeentry_set.count())

    @admin.display(description="counts by model")
    def counts_display(self, obj: ImportRun) -> str:
        if not obj.counts:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{}: {} created, {} updated, {} unchanged, {} deleted</li>",
                (
                    (name, c["created"], c["updated"], c["unchanged"], c["deleted"])
                    for name, c in sorted(obj.counts.items())
                ),
            ),
        )
