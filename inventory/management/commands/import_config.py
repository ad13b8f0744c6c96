from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.importer import ConfigImportError, ImportReport, config_import
from inventory.signals import config_import_finished, config_import_started


class Command(BaseCommand):
    help = (
        "Import the original options server's configuration: its conf/ folder DIR (namespaces.yaml, hdfs.yaml, "
        "graphs.yaml, spark-defaults.yaml, profiles.yaml), or with --helm-values a gaffer-jhub or Zero to "
        "JupyterHub values file. All or nothing; running it twice changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "directory", metavar="DIR", type=Path, nargs="?", help="Folder holding the original's conf/ files"
        )
        parser.add_argument(
            "--helm-values",
            metavar="FILE",
            type=Path,
            help="A Helm values file (e.g. from 'helm get values --all RELEASE') instead of DIR",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check and report, then roll everything back")
        parser.add_argument("--user", help="Who runs the import, for the history (default: the operating-system user)")

    def handle(self, *args: Any, **options: Any) -> None:
        directory, helm_values = options["directory"], options["helm_values"]
        if (directory is None) == (helm_values is None):
            raise CommandError("Give either DIR or --helm-values FILE.")
        config_import_started.send(
            sender=self.__class__,
            source=str(helm_values or directory),
            helm_values=helm_values is not None,
            dry_run=options["dry_run"],
            run_by=options["user"] or _os_user(),
        )
        report: ImportReport | None = None
        error = ""
        try:
            report = config_import(directory=directory, helm_values=helm_values, dry_run=options["dry_run"])
        except ConfigImportError as exc:
            error = str(exc)
            raise CommandError(f"Nothing imported: {exc}") from exc
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            config_import_finished.send(
                sender=self.__class__, report=report, lines=report.lines() if report else [], error=error
            )
        for line in report.lines():
            style = self.style.WARNING if line.startswith("Warning") else (lambda text: text)
            self.stdout.write(style(line))
        self.stdout.write(self.style.SUCCESS("Import checked." if report.dry_run else "Import done."))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container's user may have no passwd entry.
        return f"uid {os.getuid()}"
