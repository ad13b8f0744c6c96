from __future__ import annotations

from django.apps import AppConfig


class SpawningConfig(AppConfig):
    """The spawning app; connects its receivers of the inventory's sync signals."""

    name = "spawning"
    verbose_name = "Spawning"

    def ready(self) -> None:
        from spawning import receivers  # noqa: F401 - connects the receivers on import
