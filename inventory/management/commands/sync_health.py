from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from optionsportal.health import sync_freshness


class Command(BaseCommand):
    help = "Exit 0 when the last sync round completed recently (the sync worker's readiness probe)."

    def handle(self, *args: Any, **options: Any) -> None:
        fresh, detail = sync_freshness()
        if not fresh:
            raise CommandError(f"Inventory is stale: {detail}")
        self.stdout.write(detail)
