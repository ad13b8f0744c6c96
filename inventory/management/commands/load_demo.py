from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from inventory.demo import load_demo


class Command(BaseCommand):
    help = (
        "Load the quick-start demo configuration (idempotent). Without --cluster it also adds stand-in rows, "
        "marked as demo data, for what a cluster would have (namespaces, HDFS, a Gaffer graph, service "
        "accounts, a volume)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--cluster",
            action="store_true",
            help="The cluster has the demo objects (seed_demo_cluster) and the sync found them: add no stand-ins.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = load_demo(stand_in_for_cluster=not options["cluster"])
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded ({result['created']} new rows)."))
