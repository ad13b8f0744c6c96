from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inventory.demo import cluster_objects
from kube.client import KubeError
from kube.seed import apply_manifests


class Command(BaseCommand):
    help = (
        "Create the demo's HDFS, Gaffer graph, notebook service accounts and volume as real objects "
        "in the cluster KUBECONFIG names (idempotent). Meant for a throwaway cluster."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            applied = apply_manifests(cluster_objects())
        except KubeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Demo cluster objects applied ({len(applied)})."))
