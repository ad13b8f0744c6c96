from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Who changed what: the historical tables of the operators' models, and import_config runs.

    The history of the inventory's models lives here, not in the inventory, so the
    inventory neither imports this app nor carries its migrations.
    """

    name = "audit"
    verbose_name = "History"

    def ready(self) -> None:
        from audit.receivers import connect_signals

        connect_signals()
