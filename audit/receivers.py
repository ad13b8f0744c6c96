"""Hooks the history app hangs on the inventory's signals and on simple-history's."""

from __future__ import annotations

from typing import Any

from simple_history.signals import post_create_historical_record

from audit.services import change_entry_record, import_run_finish, import_run_start
from inventory.signals import config_import_finished, config_import_started


def _on_historical_record(sender: Any, history_instance: Any, **kwargs: Any) -> None:
    if sender._meta.app_label == "audit":
        change_entry_record(record=history_instance)


def _on_import_started(
    sender: Any, *, source: str, helm_values: bool, dry_run: bool, run_by: str, **kwargs: Any
) -> None:
    import_run_start(source=source, helm_values=helm_values, dry_run=dry_run, run_by=run_by)


def _on_import_finished(sender: Any, *, report: Any, lines: list[str], error: str, **kwargs: Any) -> None:
    import_run_finish(report=report, lines=lines, error=error)


def connect_signals() -> None:
    post_create_historical_record.connect(_on_historical_record, dispatch_uid="audit.change_entry")
    config_import_started.connect(_on_import_started, dispatch_uid="audit.import_started")
    config_import_finished.connect(_on_import_finished, dispatch_uid="audit.import_finished")
