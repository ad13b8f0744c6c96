from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from inventory.demo import load_demo


class Command(BaseCommand):
    help = "Load the quick-start demo configuration (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = load_demo()
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded ({result['created']} new rows)."))
