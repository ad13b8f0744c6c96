"""The operators' console: curate what notebooks may get, live, without restarts.

Discovered rows show what the cluster reported read-only and let operators
edit only their own columns (hidden, display name, description, order, URL or
IAM role overrides), so the next sync never fights the admin. Operators may add
HDFS instances and Gaffer graphs by hand; discovered rows cannot be deleted here
because the sync would only bring them back (hide them instead).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from inventory.generation import bump_inventory_generation
from inventory.lifecycle import ImageRules, Lifecycle, image_matches
from inventory.models import (
    QUANTITIES,
    AccessRule,
    ClusterNode,
    DataSource,
    Discovered,
    GafferGraph,
    HdfsInstance,
    ImageLifecycle,
    LimitRange,
    MachineType,
    Namespace,
    NamespaceOption,
    NotebookVolume,
    Profile,
    ProfileOption,
    ResourcePreset,
    ResourceQuota,
    ServiceAccount,
    Source,
    SparkDefault,
    SyncRound,
)

if TYPE_CHECKING:
    from django_stubs_ext import FieldsetSpec

# The freshness banner on the admin index; the inventory's own pages pick up
# templates/admin/inventory/ by Django's lookup order.
admin.site.index_template = "admin/inventory/index.html"


# --- Form fields and widgets -----------------------------------------------------------


def split_names(text: str) -> list[str]:
    """``"alice, bob\\ncarol"`` → ``["alice", "bob", "carol"]``, without blanks or repeats."""
    names: list[str] = []
    for chunk in text.replace("\n", ",").split(","):
        name = chunk.strip()
        if name and name not in names:
            names.append(name)
    return names


class NameListField(forms.CharField):
    """Edits a JSON list of user or group names as comma-separated text."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 60})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Comma- or line-separated names.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        if isinstance(value, str) and value.startswith("["):
            # The bound value of a JSONField-backed initial comes back as JSON text.
            try:
                decoded = json.loads(value)
            except ValueError:
                return value
            if isinstance(decoded, list):
                return ", ".join(str(v) for v in decoded)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return [str(v) for v in value]
        return split_names(super().to_python(value) or "")

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        for name in value:
            if any(c.isspace() for c in name):
                raise forms.ValidationError(f"'{name}' contains a space; separate names with commas.")


def names_display(names: list[str] | None, *, empty: str = "—") -> str:
    return ", ".join(names or []) or empty


# --- Shared list filters and actions ----------------------------------------


class PresenceFilter(admin.SimpleListFilter):
    """Present in the cluster (or added by hand) versus gone since the last sync."""

    title = "presence"
    parameter_name = "presence"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("present", "Present"), ("missing", "Missing from the cluster")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "present":
            return queryset.filter(missing_since__isnull=True)
        if self.value() == "missing":
            return queryset.filter(missing_since__isnull=False)
        return queryset


class RestrictedFilter(admin.SimpleListFilter):
    """Whether any access rule names the row (then only those rules' users may use it)."""

    title = "access"
    parameter_name = "access"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("open", "Open to everyone"), ("restricted", "Restricted by a rule")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "open":
            return queryset.filter(access_rules__isnull=True)
        if self.value() == "restricted":
            return queryset.filter(access_rules__isnull=False).distinct()
        return queryset


@admin.action(description="Hide the selected entries (neither offered nor accepted)", permissions=["change"])
def hide_entries(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    with transaction.atomic():
        count = queryset.filter(hidden=False).update(hidden=True)
        # queryset.update sends no signals; the spawn form's snapshot must still hear of it.
        bump_inventory_generation()
    modeladmin.message_user(request, f"{count} hidden.", messages.SUCCESS)


@admin.action(description="Unhide the selected entries", permissions=["change"])
def unhide_entries(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    with transaction.atomic():
        count = queryset.filter(hidden=True).update(hidden=False)
        # queryset.update sends no signals; the spawn form's snapshot must still hear of it.
        bump_inventory_generation()
    modeladmin.message_user(request, f"{count} shown again.", messages.SUCCESS)


def access_display(obj: Any) -> str:
    rules = list(obj.access_rules.all())
    if not rules:
        return "everyone"
    return ", ".join(rule.name for rule in rules)


# --- Curated configuration --------------------------------------------------


class RuleInline(admin.TabularInline):
    """The access rules naming an item, edited from the item's own page."""

    extra = 0
    verbose_name = "access rule"
    verbose_name_plural = "Who may use it (no rule: everyone)"

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "accessrule" and formfield is not None:
            formfield.label = "Access rule"
        return formfield


class ProfileAccessInline(RuleInline):
    """Which access rules name this profile (none: everyone may use it)."""

    model = AccessRule.profiles.through


LIFECYCLE_FIELDSET: tuple[str, Any] = (
    "Lifecycle",
    {
        "fields": ("lifecycle", "lifecycle_message", "successor"),
        "description": "Deprecated: still offered, with the message beside it on the spawn form. Retired: no "
        "longer offered; users whose last choice it was get the successor preselected with a notice, and "
        "/prespawn refuses it naming the successor. A retired entry needs a successor.",
    },
)


class LifecycleAdmin(admin.ModelAdmin):
    """The admin of a lifecycled model (inventory/lifecycle.py)."""

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "lifecycle" and field is not None:
            # A form posted without it (a script, an older page) keeps the row's state, or "active" for a new one.
            field.required = False
        return field


def lifecycle_display(obj: Profile | MachineType) -> str:
    if obj.lifecycle == Lifecycle.RETIRED:
        return f"retired → {obj.successor}" if obj.successor_id else "retired"
    return obj.get_lifecycle_display().split(" (")[0].lower()


@admin.register(Profile)
class ProfileAdmin(LifecycleAdmin):
    list_display = (
        "display_name",
        "slug",
        "image",
        "default",
        "enabled",
        "lifecycle_display",
        "features",
        "who_may_use",
        "order",
    )
    list_display_links = ("display_name", "slug")
    list_editable = ("order",)
    list_select_related = ("successor",)
    list_filter = ("enabled", "lifecycle", "default", "enable_hdfs", "enable_gaffer", "enable_spark", RestrictedFilter)
    search_fields = ("slug", "display_name", "image", "description")
    prepopulated_fields = {"slug": ("display_name",)}
    inlines = (ProfileAccessInline,)
    fieldsets = (
        (None, {"fields": ("display_name", "slug", "description", "image", "default", "enabled", "order")}),
        LIFECYCLE_FIELDSET,
        ("Features", {"fields": ("enable_hdfs", "enable_gaffer", "enable_spark")}),
        (
            "Spark",
            {
                "fields": ("spark_image", "spark_ingress_host", "spark_ingress_path"),
                "description": "Needed when the profile enables Spark. Ingress templates may use "
                "{{USERNAME}} and {{SERVERNAME}}.",
            },
        ),
        (
            "Machine types",
            {"fields": ("machine_types",), "description": "None chosen: the profile runs on every machine type."},
        ),
        ("Extra KubeSpawner overrides", {"fields": ("kubespawner_override",), "classes": ("collapse",)}),
    )
    filter_horizontal = ("machine_types",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Profile]:
        return super().get_queryset(request).prefetch_related("access_rules")

    @admin.display(description="enables")
    def features(self, obj: Profile) -> str:
        enabled = [name for name, on in (("HDFS", obj.enable_hdfs), ("Gaffer", obj.enable_gaffer)) if on]
        if obj.enable_spark:
            enabled.append("Spark")
        return ", ".join(enabled) or "—"

    @admin.display(description="who may use it")
    def who_may_use(self, obj: Profile) -> str:
        return access_display(obj)

    @admin.display(description="lifecycle", ordering="lifecycle")
    def lifecycle_display(self, obj: Profile) -> str:
        return lifecycle_display(obj)


def _quantity_fieldsets() -> tuple[Any, ...]:
    """One row per resource quantity: minimum, preset value, maximum."""
    return tuple((f"{q.title} ({q.unit})", {"fields": ((f"{q.key}_min", q.key, f"{q.key}_max"),)}) for q in QUANTITIES)


@admin.register(ResourcePreset)
class ResourcePresetAdmin(admin.ModelAdmin):
    list_display = ("display_name", "slug", "default", "cpu_range", "mem_range", "spark_range", "disk_range", "order")
    list_display_links = ("display_name", "slug")
    list_editable = ("order",)
    list_filter = ("default",)
    search_fields = ("slug", "display_name", "description")
    prepopulated_fields = {"slug": ("display_name",)}
    fieldsets = (
        (None, {"fields": ("display_name", "slug", "description", "default", "order")}),
        *_quantity_fieldsets(),
    )

    @staticmethod
    def _range(obj: ResourcePreset, field: str) -> str:
        return f"{getattr(obj, field)} ({getattr(obj, field + '_min')} to {getattr(obj, field + '_max')})"

    @admin.display(description="CPU")
    def cpu_range(self, obj: ResourcePreset) -> str:
        return self._range(obj, "cpu")

    @admin.display(description="memory MB")
    def mem_range(self, obj: ResourcePreset) -> str:
        return self._range(obj, "mem")

    @admin.display(description="Spark executor")
    def spark_range(self, obj: ResourcePreset) -> str:
        return f"{self._range(obj, 'spark_cpu')} vCPU, {self._range(obj, 'spark_mem')} MB"

    @admin.display(description="disk GB")
    def disk_range(self, obj: ResourcePreset) -> str:
        return self._range(obj, "disk")


class NamespaceOptionForm(forms.ModelForm):
    """Users and groups as comma-separated names."""

    users = NameListField(help_text="Usernames, comma-separated. No users and no groups: everyone.")
    groups = NameListField(help_text="JupyterHub groups, comma-separated.")

    class Meta:
        model = NamespaceOption
        fields = ("pattern", "description", "users", "groups", "order")


class NamespaceOptionAccessInline(RuleInline):
    """Access rules that also name this namespace option."""

    model = AccessRule.namespaces.through
    verbose_name_plural = "Access rules naming it"


@admin.register(NamespaceOption)
class NamespaceOptionAdmin(admin.ModelAdmin):
    form = NamespaceOptionForm
    list_display = ("pattern", "templated_display", "description", "users_display", "groups_display", "order")
    list_editable = ("order",)
    search_fields = ("pattern", "description", "users", "groups")
    inlines = (NamespaceOptionAccessInline,)

    @admin.display(description="templated", boolean=True)
    def templated_display(self, obj: NamespaceOption) -> bool:
        return obj.templated

    @admin.display(description="users")
    def users_display(self, obj: NamespaceOption) -> str:
        return names_display(obj.users, empty="everyone" if not obj.groups else "—")

    @admin.display(description="groups")
    def groups_display(self, obj: NamespaceOption) -> str:
        return names_display(obj.groups)


class AccessRuleForm(forms.ModelForm):
    """Users and groups as comma-separated names."""

    users = NameListField(help_text="JupyterHub usernames, comma-separated.")
    groups = NameListField(help_text="JupyterHub groups, comma-separated.")

    class Meta:
        model = AccessRule
        fields = (
            "name",
            "everyone",
            "users",
            "groups",
            "profiles",
            "namespaces",
            "hdfs_instances",
            "gaffer_graphs",
            "service_accounts",
            "machine_types",
            "max_cpu",
            "max_mem",
            "max_spark_cpu",
            "max_spark_mem",
            "max_disk",
            "max_gpus",
        )


class AppliesToFilter(admin.SimpleListFilter):
    """Rules for everyone, for groups, or for named users."""

    title = "applies to"
    parameter_name = "applies_to"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("everyone", "Everyone"), ("groups", "Groups"), ("users", "Named users")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "everyone":
            return queryset.filter(everyone=True)
        if self.value() == "groups":
            return queryset.exclude(groups=[])
        if self.value() == "users":
            return queryset.exclude(users=[])
        return queryset


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    list_display = ("display_name", "slug", "enabled", "file_names", "order")
    list_editable = ("enabled", "order")
    search_fields = ("slug", "display_name", "description")
    prepopulated_fields = {"slug": ("display_name",)}

    @admin.display(description="files")
    def file_names(self, obj: DataSource) -> str:
        return ", ".join(sorted(obj.files)) if isinstance(obj.files, dict) else "—"


@admin.register(ProfileOption)
class ProfileOptionAdmin(admin.ModelAdmin):
    list_display = ("display_name", "profile", "slug", "choice_keys", "unlisted_enabled", "order")
    list_select_related = ("profile",)
    list_filter = ("profile", "unlisted_enabled")
    search_fields = ("slug", "display_name", "profile__slug")
    fieldsets = (
        (None, {"fields": ("profile", "slug", "display_name", "order")}),
        (
            "Choices",
            {
                "fields": ("choices",),
                "description": 'A JSON list, in the order offered: [{"key": "tf", "display_name": "TensorFlow", '
                '"default": true, "kubespawner_override": {"image": "…"}}]. The choice\'s overrides are applied '
                "on top of the profile's.",
            },
        ),
        (
            "A value users type (unlisted choice)",
            {
                "fields": (
                    "unlisted_enabled",
                    "unlisted_display_name",
                    "unlisted_validation_regex",
                    "unlisted_validation_message",
                    "unlisted_kubespawner_override",
                ),
                "description": "The typed value is checked against the regex on the server and replaces {value} "
                "in the overrides.",
            },
        ),
    )

    @admin.display(description="choices")
    def choice_keys(self, obj: ProfileOption) -> str:
        choices = obj.choices if isinstance(obj.choices, list) else []
        return ", ".join(str(c.get("key")) for c in choices if isinstance(c, dict)) or "—"


# Every kind a rule can name: a kind added to AccessRule appears here without being listed.
_RULE_RELATIONS = tuple(relation.name for relation in AccessRule._meta.many_to_many)


@admin.register(AccessRule)
class AccessRuleAdmin(admin.ModelAdmin):
    form = AccessRuleForm
    list_display = ("name", "who", "grants", "ceilings")
    list_filter = (AppliesToFilter,)
    search_fields = ("name", "users", "groups")
    filter_horizontal = _RULE_RELATIONS
    fieldsets = (
        (None, {"fields": ("name",)}),
        (
            "Who",
            {
                "fields": ("everyone", "users", "groups"),
                "description": "A user matches when the rule is for everyone, names the user, or names one of "
                "the user's JupyterHub groups.",
            },
        ),
        (
            "What",
            {
                "fields": _RULE_RELATIONS,
                "description": "Once any rule names an item, only users matching a rule that names it may use it.",
            },
        ),
        (
            "Resource ceilings",
            {
                "fields": (*(f"max_{quantity.key}" for quantity in QUANTITIES), "max_gpus"),
                "description": "Blank: the presets' bounds. A user gets the most generous ceiling of the rules "
                "matching them.",
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessRule]:
        return super().get_queryset(request).prefetch_related(*_RULE_RELATIONS)

    @admin.display(description="applies to")
    def who(self, obj: AccessRule) -> str:
        if obj.everyone:
            return "everyone"
        parts = []
        if obj.groups:
            parts.append("groups: " + ", ".join(obj.groups))
        if obj.users:
            parts.append("users: " + ", ".join(obj.users))
        return "; ".join(parts)

    @admin.display(description="grants")
    def grants(self, obj: AccessRule) -> str:
        parts = []
        for relation in AccessRule._meta.many_to_many:
            names = [str(item) for item in getattr(obj, relation.name).all()]
            if names:
                parts.append(f"{relation.verbose_name}: {', '.join(names)}")
        return "; ".join(parts) or "—"

    @admin.display(description="ceilings")
    def ceilings(self, obj: AccessRule) -> str:
        parts = [
            f"{quantity.key} {value} {quantity.unit}"
            for quantity in QUANTITIES
            if (value := getattr(obj, f"max_{quantity.key}")) is not None
        ]
        if obj.max_gpus is not None:
            parts.append(f"GPUs {obj.max_gpus}")
        return ", ".join(parts) or "—"


@admin.register(SparkDefault)
class SparkDefaultAdmin(admin.ModelAdmin):
    list_display = ("key", "value", "order")
    list_editable = ("value", "order")
    search_fields = ("key", "value")


# --- Discovered inventory ---------------------------------------------------


class DiscoveredForm(forms.ModelForm):
    """Lets the key of a manual entry default to ``namespace:name``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            # Set before validation so the model's clean() applies the manual rules (a URL is required).
            self.instance.source = Source.MANUAL
        if "key" in self.fields:
            self.fields["key"].required = False
            self.fields["key"].help_text = "The id the spawn form uses. Blank: namespace:name."

    def clean(self) -> dict[str, Any]:
        super().clean()
        # Django's clean() returns cleaned_data itself; the stubs allow None.
        cleaned = self.cleaned_data
        if "key" in self.fields and not cleaned.get("key") and cleaned.get("name"):
            namespace = cleaned.get("namespace") or ""
            cleaned["key"] = f"{namespace}:{cleaned['name']}" if namespace else cleaned["name"]
        return cleaned


class DiscoveredAdmin(admin.ModelAdmin):
    """Shared by every discovered kind: observed columns read-only, operator columns editable."""

    form = DiscoveredForm
    operator_fields: tuple[str, ...] = ("hidden", "display_name", "description", "order")
    # Manual entries: the operator types these instead of the sync observing them.
    manual_fields: tuple[str, ...] = ()
    allow_manual = False
    extra_readonly: tuple[str, ...] = ()

    list_display: tuple[str, ...] = ("label", "key", "namespace", "source", "hidden", "present", "last_seen")
    list_display_links = ("label", "key")
    list_filter: ClassVar[tuple[Any, ...]] = (PresenceFilter, "hidden", "source", "namespace", RestrictedFilter)
    search_fields: ClassVar[tuple[str, ...]] = ("key", "name", "display_name", "namespace")
    actions = (hide_entries, unhide_entries)
    list_per_page = 100
    date_hierarchy = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Discovered]:
        queryset = super().get_queryset(request)
        if hasattr(self.model, "access_rules"):
            queryset = queryset.prefetch_related("access_rules")
        return queryset

    def _observed(self) -> tuple[str, ...]:
        return (
            "key",
            "source",
            *self.model.OBSERVED_FIELDS,
            "first_seen",
            "last_seen",
            "missing_since",
        )

    def _is_manual(self, obj: Discovered | None) -> bool:
        return obj is None or obj.source == Source.MANUAL

    def get_readonly_fields(self, request: HttpRequest, obj: Discovered | None = None) -> tuple[str, ...]:
        editable = ("key", "namespace", "name", *self.manual_fields) if self._is_manual(obj) else ()
        return tuple(f for f in (*self._observed(), *self.extra_readonly) if f not in editable)

    def get_fieldsets(self, request: HttpRequest, obj: Discovered | None = None) -> FieldsetSpec:
        observed = tuple(f for f in self._observed() if f not in self.manual_fields)
        if obj is None:
            return [
                (None, {"fields": ("key", "namespace", "name", *self.manual_fields)}),
                (
                    "Operator settings",
                    {"fields": tuple(f for f in self.operator_fields if f not in self.manual_fields)},
                ),
            ]
        return [
            ("Operator settings", {"fields": (*self.operator_fields, *self.extra_readonly)}),
            (
                "Entered by hand" if obj.source == Source.MANUAL else "Observed in the cluster (read-only)",
                {"fields": observed},
            ),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.allow_manual and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Discovered | None = None) -> bool:
        # Without an object this governs the bulk delete action: never offered, so a
        # selection cannot sweep up discovered rows; a manual row is deleted from its page.
        if obj is None or obj.source != Source.MANUAL:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Discovered, form: forms.ModelForm, change: bool) -> None:
        if not change:
            obj.source = Source.MANUAL
        super().save_model(request, obj, form, change)

    @admin.display(description="present", boolean=True, ordering="missing_since")
    def present(self, obj: Discovered) -> bool:
        return obj.missing_since is None

    @admin.display(description="name", ordering="display_name")
    def label(self, obj: Discovered) -> str:
        return obj.label

    @admin.display(description="who may use it")
    def who_may_use(self, obj: Discovered) -> str:
        return access_display(obj)


class HdfsAccessInline(RuleInline):
    """Access rules naming this HDFS instance."""

    model = AccessRule.hdfs_instances.through


@admin.register(HdfsInstance)
class HdfsInstanceAdmin(DiscoveredAdmin):
    allow_manual = True
    manual_fields = ("url_override",)
    operator_fields = ("hidden", "display_name", "description", "order", "url_override")
    # The static file's values are written by import_config only.
    extra_readonly = ("effective_url", "static_entry", "static_url")
    list_display = (
        "label",
        "key",
        "effective_url",
        "source",
        "static_entry",
        "hidden",
        "present",
        "who_may_use",
        "last_seen",
    )
    search_fields = ("key", "name", "display_name", "namespace", "observed_url", "url_override")
    inlines = (HdfsAccessInline,)

    @admin.display(description="URL")
    def effective_url(self, obj: HdfsInstance) -> str:
        return obj.url


class GraphAccessInline(RuleInline):
    """Access rules naming this graph."""

    model = AccessRule.gaffer_graphs.through


@admin.register(GafferGraph)
class GafferGraphAdmin(DiscoveredAdmin):
    allow_manual = True
    manual_fields = ("url_override",)
    operator_fields = ("hidden", "display_name", "description", "order", "url_override")
    extra_readonly = ("effective_url", "available_display", "static_entry", "static_url", "static_description")
    list_display = (
        "label",
        "key",
        "effective_url",
        "available_display",
        "source",
        "static_entry",
        "hidden",
        "present",
        "who_may_use",
        "last_seen",
    )
    search_fields = ("key", "name", "display_name", "namespace", "observed_description", "description")
    inlines = (GraphAccessInline,)

    @admin.display(description="REST API")
    def effective_url(self, obj: GafferGraph) -> str:
        return obj.url

    @admin.display(description="available", boolean=True)
    def available_display(self, obj: GafferGraph) -> bool:
        return obj.available


class RoleFilter(admin.SimpleListFilter):
    """Service accounts with or without an IAM role, and where it comes from."""

    title = "IAM role"
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("override", "Overridden by an operator"), ("annotation", "From the annotation"), ("none", "None")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "override":
            return queryset.exclude(role_arn_override="")
        if self.value() == "annotation":
            return queryset.filter(role_arn_override="").exclude(observed_role_arn="")
        if self.value() == "none":
            return queryset.filter(role_arn_override="", observed_role_arn="")
        return queryset


class ServiceAccountAccessInline(RuleInline):
    """Access rules naming this service account."""

    model = AccessRule.service_accounts.through
    verbose_name_plural = "Access rules (no rule: everyone the annotation allows)"


@admin.register(ServiceAccount)
class ServiceAccountAdmin(DiscoveredAdmin):
    operator_fields = ("hidden", "display_name", "description", "order", "role_arn_override")
    extra_readonly = ("iam_role",)
    list_display = (
        "label",
        "key",
        "namespace",
        "iam_role",
        "annotation_users",
        "hidden",
        "present",
        "who_may_use",
        "last_seen",
    )
    list_filter = (PresenceFilter, "hidden", RoleFilter, "namespace", RestrictedFilter)
    search_fields = ("key", "name", "display_name", "namespace", "observed_role_arn", "role_arn_override")
    inlines = (ServiceAccountAccessInline,)

    @admin.display(description="IAM role")
    def iam_role(self, obj: ServiceAccount) -> str:
        if not obj.role_arn:
            return "—"
        if not obj.role_name:
            return obj.role_arn
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer" title="{}">{}</a>',
            obj.role_console_url,
            obj.role_arn,
            obj.role_name,
        )

    @admin.display(description="annotation users")
    def annotation_users(self, obj: ServiceAccount) -> str:
        return names_display(obj.observed_users, empty="everyone")


@admin.register(NotebookVolume)
class NotebookVolumeAdmin(DiscoveredAdmin):
    list_display = (
        "label",
        "key",
        "owner_username",
        "owner_servername",
        "volume_name",
        "capacity",
        "phase",
        "hidden",
        "present",
        "last_seen",
    )
    list_filter = (PresenceFilter, "hidden", "phase", "namespace")
    search_fields = ("key", "name", "display_name", "namespace", "owner_username", "volume_name")


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    """Namespaces only tell which configured namespaces exist: nothing to edit."""

    list_display = ("name", "present", "first_seen", "last_seen", "missing_since")
    list_filter = (PresenceFilter,)
    search_fields = ("name",)
    readonly_fields = ("name", "uid", "labels", "first_seen", "last_seen", "missing_since")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Namespace | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Namespace | None = None) -> bool:
        return False

    @admin.display(description="present", boolean=True, ordering="missing_since")
    def present(self, obj: Namespace) -> bool:
        return obj.missing_since is None


@admin.register(SyncRound)
class SyncRoundAdmin(admin.ModelAdmin):
    """The sync's history, read-only: how fresh the inventory is and what failed."""

    list_display = (
        "started_at",
        "kind",
        "status_display",
        "duration",
        "objects_seen",
        "added",
        "changed",
        "marked_missing",
        "returned",
        "short_error",
    )
    list_filter = ("status", "kind")
    date_hierarchy = "started_at"
    readonly_fields = (
        "kind",
        "status",
        "started_at",
        "finished_at",
        "objects_seen",
        "added",
        "changed",
        "marked_missing",
        "returned",
        "details_display",
        "error",
    )
    exclude = ("details",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRound | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SyncRound | None = None) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: SyncRound) -> str:
        colour = {"completed": "green", "failed": "#ba2121", "running": "#666"}.get(obj.status, "inherit")
        return format_html('<span style="color: {}">{}</span>', colour, obj.get_status_display())

    @admin.display(description="duration")
    def duration(self, obj: SyncRound) -> str:
        seconds = obj.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="error")
    def short_error(self, obj: SyncRound) -> str:
        return obj.error if len(obj.error) <= 120 else obj.error[:119] + "…"

    @admin.display(description="counts by kind")
    def details_display(self, obj: SyncRound) -> str:
        if not obj.details:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join("", "<li>{}: {}</li>", ((k, json.dumps(v)) for k, v in sorted(obj.details.items()))),
        )


@admin.register(MachineType)
class MachineTypeAdmin(LifecycleAdmin):
    list_display = (
        "display_name",
        "slug",
        "enabled",
        "placement",
        "gpus",
        "cpu_range",
        "mem_range",
        "guarantee",
        "lifecycle_display",
        "order",
    )
    list_display_links = ("display_name", "slug")
    list_editable = ("order",)
    list_select_related = ("successor",)
    list_filter = ("enabled", "lifecycle", "guarantee_policy")
    search_fields = ("slug", "display_name", "description")
    prepopulated_fields = {"slug": ("display_name",)}
    fieldsets = (
        (None, {"fields": ("display_name", "slug", "description", "enabled", "order")}),
        LIFECYCLE_FIELDSET,
        (
            "Placement",
            {
                "fields": ("node_selector", "tolerations", "node_affinity"),
                "description": "Which nodes this machine type's notebooks run on, in Kubernetes' own JSON "
                "shapes (a pod's nodeSelector, tolerations, and requiredDuringSchedulingIgnoredDuringExecution).",
            },
        ),
        (
            "GPUs and other extended resources",
            {"fields": ("extended_resources",), "description": "Each resource with the counts a user may pick."},
        ),
        ("Bounds", {"fields": (("min_cpu", "max_cpu"), ("min_mem", "max_mem")), "description": "Blank: no bound."}),
        (
            "Guarantee",
            {
                "fields": ("guarantee_policy", "guarantee_ratio", ("cpu_guarantee", "mem_guarantee")),
                "description": "What the scheduler reserves (the request) for a notebook, against its limit.",
            },
        ),
    )

    @admin.display(description="nodes")
    def placement(self, obj: MachineType) -> str:
        parts = [f"{key}={value}" for key, value in sorted((obj.node_selector or {}).items())]
        if obj.tolerations:
            parts.append(f"{len(obj.tolerations)} toleration(s)")
        if obj.node_affinity:
            parts.append("affinity")
        return ", ".join(parts) or "any"

    @admin.display(description="GPUs")
    def gpus(self, obj: MachineType) -> str:
        return (
            "; ".join(
                f"{name}: {', '.join(str(c) for c in counts)}"
                for name, counts in sorted((obj.extended_resources or {}).items())
            )
            or "—"
        )

    @admin.display(description="CPU")
    def cpu_range(self, obj: MachineType) -> str:
        return f"{obj.min_cpu or '—'} to {obj.max_cpu or '—'}"

    @admin.display(description="memory (MB)")
    def mem_range(self, obj: MachineType) -> str:
        return f"{obj.min_mem or '—'} to {obj.max_mem or '—'}"

    @admin.display(description="guarantee")
    def guarantee(self, obj: MachineType) -> str:
        if obj.guarantee_policy == "ratio":
            return f"{obj.guarantee_ratio} of the limit"
        if obj.guarantee_policy == "explicit":
            return f"{obj.cpu_guarantee or 'limit'} vCPU, {obj.mem_guarantee or 'limit'} MB"
        return "= limit"

    @admin.display(description="lifecycle", ordering="lifecycle")
    def lifecycle_display(self, obj: MachineType) -> str:
        return lifecycle_display(obj)


@admin.register(ImageLifecycle)
class ImageLifecycleAdmin(admin.ModelAdmin):
    """Images deprecated or retired, by reference or pattern; the profiles using each are listed beside it."""

    list_display = ("pattern", "lifecycle", "message", "successor_image", "profiles_using")
    list_filter = ("lifecycle",)
    search_fields = ("pattern", "successor_image", "message")
    fields = ("pattern", "lifecycle", "message", "successor_image")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # One read of the profiles and the rules for the whole page, not one per row.
        self._profiles = list(Profile.objects.values_list("display_name", "image"))
        self._rules = ImageRules.of(ImageLifecycle.objects.all())
        return super().changelist_view(request, extra_context)

    @admin.display(description="profiles using it")
    def profiles_using(self, obj: ImageLifecycle) -> str:
        # The profiles this entry decides for: it matches their image and no more specific entry does.
        names = [
            name
            for name, image in getattr(self, "_profiles", ())
            if image_matches(obj.pattern, image)
            and (rule := self._rules.rule_for(image))
            and rule.pattern == obj.pattern
        ]
        return ", ".join(names) or "—"


class ObservedAdmin(admin.ModelAdmin):
    """What the sync reports about compute: read-only, since the next sync would overwrite edits."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ClusterNode)
class ClusterNodeAdmin(ObservedAdmin):
    list_display = ("name", "ready", "unschedulable", "taint_list", "last_seen", "missing_since")
    list_filter = ("ready", "unschedulable")
    search_fields = ("name",)

    @admin.display(description="taints")
    def taint_list(self, obj: ClusterNode) -> str:
        return ", ".join(f"{t.get('key')}={t.get('value')}:{t.get('effect')}" for t in obj.taints or []) or "—"


@admin.register(ResourceQuota)
class ResourceQuotaAdmin(ObservedAdmin):
    list_display = ("ref", "namespace", "hard", "used", "missing_since")
    search_fields = ("namespace", "name")


@admin.register(LimitRange)
class LimitRangeAdmin(ObservedAdmin):
    list_display = ("ref", "namespace", "missing_since")
    search_fields = ("namespace", "name")
