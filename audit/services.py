"""Writes of the history app: a change entry per historical record, and import_config runs."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalChanges
from simple_history.utils import get_m2m_reverse_field_name

from audit.context import ImportContext, current_import
from audit.models import BASELINE_REASON, ChangeEntry, ImportRun

# Long values (JSON overrides, descriptions) are cut in the global list; the object's history keeps them whole.
MAX_VALUE_CHARS = 500


def _text(value: Any, field: Any = None) -> str:
    if value is None:
        return ""
    if isinstance(field, models.DecimalField) and isinstance(value, Decimal):
        # As the database holds it: a form's 8 and the stored 8.00 are one value.
        text = f"{value:.{field.decimal_places}f}"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _related_names(field: models.ManyToManyField, rows: list[dict[str, Any]]) -> str:
    """Through rows of a relation, as the sorted names of the objects they point at."""
    target = get_m2m_reverse_field_name(field)
    pks = [row[target] for row in rows]
    found = field.related_model._default_manager.in_bulk(pks)  # type: ignore[union-attr]
    return ", ".join(sorted(str(found[pk]) if pk in found else f"#{pk} (deleted)" for pk in pks))


def _diff(record: HistoricalChanges, previous: HistoricalChanges | None) -> list[dict[str, str]]:
    model = record.instance_type
    if previous is None:
        # Created: every tracked value it was created with.
        changes = []
        for field in record.tracked_fields:
            value = getattr(record, field.attname)
            if field.editable and not field.primary_key and value not in (None, "", [], {}):
                changes.append({"field": field.name, "old": "", "new": _text(value, field)})
        for m2m in record._history_m2m_fields:
            rows = list(getattr(record, m2m.name).values(get_m2m_reverse_field_name(m2m)))
            if rows:
                changes.append({"field": m2m.name, "old": "", "new": _related_names(m2m, rows)})
        return changes
    delta = record.diff_against(previous)
    changes = []
    for change in delta.changes:
        field = model._meta.get_field(change.field)
        if field.many_to_many:
            old, new = _related_names(field, change.old), _related_names(field, change.new)
        else:
            old, new = _text(change.old, field), _text(change.new, field)
        changes.append({"field": change.field, "old": old, "new": new})
    return changes


def change_entry_record(*, record: HistoricalChanges) -> ChangeEntry | None:
    """The global list's entry for a historical record just written; None for a save that changed nothing."""
    if record.history_change_reason == BASELINE_REASON:
        return None
    model = record.instance_type
    history = type(record)._default_manager
    pk_name = model._meta.pk.attname
    object_id = getattr(record, pk_name)
    previous = (
        history.filter(**{pk_name: object_id}, history_id__lt=record.history_id).order_by("-history_id").first()
        if record.history_type != "+"
        else None
    )
    if record.history_type == "-":
        changes: list[dict[str, str]] = []
    else:
        changes = _diff(record, previous)
        if record.history_type == "~" and not changes:
            return None
    user = record.history_user
    run = current_import.get()
    return ChangeEntry.objects.create(
        content_type=ContentType.objects.get_for_model(model),
        object_id=str(object_id),
        object_repr=str(record.instance)[:200],
        history_id=record.history_id,
        action=record.history_type,
        changed_at=record.history_date,
        user=user,
        username=user.get_username() if user is not None else (run.run.run_by if run else ""),
        reason=record.history_change_reason or "",
        changes=changes,
        import_run=run.run if run is not None else None,
    )


def import_run_start(*, source: str, helm_values: bool, dry_run: bool, run_by: str) -> ImportRun:
    """Record a run and attribute this thread's writes to it until ``import_run_finish``."""
    run = ImportRun.objects.create(source=source, helm_values=helm_values, dry_run=dry_run, run_by=run_by)
    user = get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: run_by}).first()
    current_import.set(ImportContext(run=run, user=user))
    return run


def import_run_finish(*, report: Any, lines: list[str], error: str) -> ImportRun | None:
    context = current_import.get()
    if context is None:
        return None
    current_import.set(None)
    run = context.run
    run.finished_at = timezone.now()
    run.status = ImportRun.Status.FAILED if error or report is None else ImportRun.Status.COMPLETED
    run.error = error
    run.report = "\n".join(lines)
    if report is not None:
        run.created, run.updated, run.deleted = report.created, report.updated, report.deleted
        run.counts = {
            name: {
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "deleted": counts.deleted,
            }
            for name, counts in report.counts.items()
        }
    run.save()
    return run
