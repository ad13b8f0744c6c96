from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operators' figures: spawns, running notebooks, capacity, quotas and freshness.

    It reads the inventory and the spawn records; neither of them knows it exists.
    """

    name = "dashboard"
    verbose_name = "Dashboard"
