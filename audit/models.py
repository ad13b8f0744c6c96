"""The history of every operator change, and a record of every import_config run.

The inventory's models are registered with django-simple-history here, with
``app="audit"``, so their historical tables and migrations belong to this app
and the inventory never imports it. Discovered rows keep only the columns an
operator (or import_config) owns in their history: the sync's observed columns
are excluded, and a save that changes nothing tracked writes no record, so the
sync (which writes observed columns only, in bulk) never adds to the history.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from simple_history import register
from simple_history.models import HistoricalRecords
from simple_history.utils import get_m2m_reverse_field_name

from audit.context import current_import
from inventory import models as inventory_models
from inventory.models import (
    AccessRule,
    ClusterNode,
    Discovered,
    GafferGraph,
    HdfsInstance,
    InventoryGeneration,
    LimitRange,
    MachineType,
    Namespace,
    NamespaceOption,
    NodeUsage,
    NotebookPod,
    NotebookVolume,
    PodRequest,
    Profile,
    ResourcePreset,
    ResourceQuota,
    ServiceAccount,
    SparkDefault,
    SyncRound,
)

# Observed columns the sync writes, or bookkeeping it stamps on every round: never history.
SYNC_BOOKKEEPING = ("first_seen", "last_seen", "missing_since")
# Observed, but typed by the operator for a manual entry, and rarely changing otherwise.
KEPT_OBSERVED = ("namespace", "name")
# The reason of a record that only says how a row was before its first recorded change.
BASELINE_REASON = "as it was before its first recorded change"


class PortalHistoricalRecords(HistoricalRecords):
    """Historical records that skip saves changing nothing tracked, and know import_config runs."""

    # Model → its records, for writers that bypass save() (the admin's bulk actions).
    registered: ClassVar[dict[type[models.Model], PortalHistoricalRecords]] = {}

    def finalize(self, sender: type[models.Model], **kwargs: Any) -> None:
        super().finalize(sender, **kwargs)
        if sender is self.cls:
            PortalHistoricalRecords.registered[sender] = self
            models.signals.pre_save.connect(self.record_baseline, sender=sender, weak=False)

    def record_baseline(self, instance: models.Model, raw: bool = False, **kwargs: Any) -> None:
        """Before the first recorded change of a row that has no history, record it as it was.

        Rows the sync created (in bulk) or that predate the history have none; without
        this, their first change could not say what it changed from.
        """
        if raw or instance._state.adding or not getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
            return
        if getattr(instance, self.manager_name).exists():
            return
        stored = type(instance)._default_manager.filter(pk=instance.pk).first()
        if stored is None:
            return
        stored._change_reason = BASELINE_REASON  # type: ignore[attr-defined]
        stored._history_user = None  # type: ignore[attr-defined]
        super().create_historical_record(stored, "+")

    def create_historical_record(self, instance: models.Model, history_type: str, using: str | None = None) -> None:
        if history_type == "~" and self._unchanged(instance):
            return
        super().create_historical_record(instance, history_type, using=using)

    def _unchanged(self, instance: models.Model) -> bool:
        latest = getattr(instance, self.manager_name).order_by("-history_id").first()
        if latest is None:
            return False
        for field in self.fields_included(instance):
            if getattr(latest, field.attname) != getattr(instance, field.attname):
                return False
        for field in self.get_m2m_fields_from_model(type(instance)):
            recorded = set(getattr(latest, field.name).values_list(get_m2m_reverse_field_name(field), flat=True))
            if recorded != set(getattr(instance, field.name).values_list("pk", flat=True)):
                return False
        return True

    def get_change_reason_for_object(self, instance: models.Model, history_type: str, using: str | None) -> Any:
        reason = super().get_change_reason_for_object(instance, history_type, using)
        run = current_import.get()
        if reason is None and run is not None:
            return run.change_reason
        return reason

    def get_history_user(self, instance: models.Model) -> Any:
        user = super().get_history_user(instance)
        run = current_import.get()
        if user is None and run is not None:
            return run.user
        return user


def _excluded(model: type[Discovered]) -> list[str]:
    observed = [name for name in model.OBSERVED_FIELDS if name not in KEPT_OBSERVED]
    return [*observed, *SYNC_BOOKKEEPING]


def _register(model: type[models.Model], **options: Any) -> None:
    register(
        model,
        app="audit",
        records_class=PortalHistoricalRecords,
        history_id_field=models.BigAutoField(primary_key=True),
        **options,
    )


# Every kind a rule can name, from the model: a kind added later has its links recorded too.
ACCESS_RULE_RELATIONS = tuple(relation.name for relation in AccessRule._meta.many_to_many)

_register(Profile, m2m_fields=[Profile.machine_types.field])
_register(MachineType)
_register(ResourcePreset)
_register(NamespaceOption)
_register(SparkDefault)
_register(AccessRule, m2m_fields=[getattr(AccessRule, name).field for name in ACCESS_RULE_RELATIONS])
for _model in (HdfsInstance, GafferGraph, ServiceAccount, NotebookVolume):
    _register(_model, excluded_fields=_excluded(_model))

# What operators curate beyond the above (an offered kind added later, such as DataSource):
# every other inventory model but bookkeeping, discovered namespaces and capacity rows.
_NOT_TRACKED = (
    SyncRound,
    InventoryGeneration,
    Namespace,
    ClusterNode,
    PodRequest,
    ResourceQuota,
    LimitRange,
    NodeUsage,
    NotebookPod,
)
_CURATED_LATER = tuple(
    model
    for model in vars(inventory_models).values()
    if isinstance(model, type)
    and issubclass(model, models.Model)
    and model.__module__ == inventory_models.__name__
    and not model._meta.abstract
    and model not in PortalHistoricalRecords.registered
    and model not in _NOT_TRACKED
)
for _curated in _CURATED_LATER:
    _register(_curated)

# What the history covers, in the order the global list offers them.
TRACKED_MODELS: tuple[type[models.Model], ...] = (
    Profile,
    MachineType,
    ResourcePreset,
    AccessRule,
    NamespaceOption,
    SparkDefault,
    HdfsInstance,
    GafferGraph,
    ServiceAccount,
    NotebookVolume,
    *_CURATED_LATER,
)


class ImportRun(models.Model):
    """One run of ``import_config``: what it read, who ran it, what it did and whether it worked."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    source = models.TextField(help_text="The conf/ folder or Helm values file read")
    helm_values = models.BooleanField(default=False, help_text="A Helm values file, not a conf/ folder")
    run_by = models.CharField(max_length=150, help_text="--user, or the operating-system user")
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="Created, updated, unchanged, deleted by model")
    report = models.TextField(blank=True, help_text="What the command printed")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-started_at",)
        get_latest_by = "started_at"
        verbose_name = "import_config run"

    def __str__(self) -> str:
        return f"import_config {self.source} {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"

    @property
    def change_reason(self) -> str:
        return f"import_config {self.source}"


class ChangeEntry(models.Model):
    """One recorded change of any tracked model, with its field-level diff: the global history list.

    Written beside each historical record, in the same transaction, so one table can be
    filtered by model, user and date; the historical tables stay the per-object truth.
    """

    class Action(models.TextChoices):
        CREATED = "+", "Created"
        CHANGED = "~", "Changed"
        DELETED = "-", "Deleted"

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, verbose_name="model")
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200, verbose_name="object")
    history_id = models.BigIntegerField(help_text="The historical record's id")
    action = models.CharField(max_length=1, choices=Action.choices)
    changed_at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted")
    reason = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True, help_text="[{field, old, new}] as text")
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("-changed_at", "-id")
        verbose_name = "change"
        verbose_name_plural = "changes"
        indexes = [models.Index(fields=("content_type", "object_id", "-changed_at"))]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_repr} {self.changed_at:%Y-%m-%d %H:%M:%S}"

    @property
    def changed_fields(self) -> list[str]:
        return [change["field"] for change in self.changes]
