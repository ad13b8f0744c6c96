"""JupyterHub side of Options Portal: ``c.JupyterHub.spawner_class = "optionsportal_hub.OptionsPortalSpawner"``."""

from __future__ import annotations

from optionsportal_hub.client import OptionsPortalError, PortalClient
from optionsportal_hub.spawner import OptionsPortalSpawner, OriginalShapeSpawner

__all__ = ["OptionsPortalError", "OptionsPortalSpawner", "OriginalShapeSpawner", "PortalClient"]
__version__ = "0.1.0"
