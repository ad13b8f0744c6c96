from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.models import TRACKED_MODELS, ChangeEntry, ImportRun


class Command(BaseCommand):
    help = (
        "Delete history older than --days: historical records, the global change list's entries and "
        "import_config runs. The newest record of every object is kept, so its history still starts somewhere."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, required=True, help="Keep this many days of history")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.")
        cutoff = timezone.now() - timedelta(days=options["days"])
        deleted = 0
        with transaction.atomic():
            for model in TRACKED_MODELS:
                history = model.history  # type: ignore[attr-defined]
                pk_name = model._meta.pk.attname
                newest = history.values(pk_name).annotate(newest=Max("history_id")).values("newest")
                old = history.filter(history_date__lt=cutoff).exclude(history_id__in=newest)
                deleted += old.count()
                old.delete()
            entries, _ = ChangeEntry.objects.filter(changed_at__lt=cutoff).delete()
            runs, _ = ImportRun.objects.filter(started_at__lt=cutoff).delete()
        self.stdout.write(f"Deleted {deleted} historical records, {entries} change entries, {runs} import runs.")
