from __future__ import annotations

from django.apps import AppConfig


class SpawningConfig(AppConfig):
    name = "spawning"
    verbose_name = "Spawning"
