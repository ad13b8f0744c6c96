from __future__ import annotations

from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """The inventory app; connects the signals that keep the inventory generation current."""

    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        from inventory.generation import connect_signals

        connect_signals()
