"""Spawning's part in the inventory sync: the writer's clean-ups after each full round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.dispatch import receiver

from inventory.models import SyncRound
from inventory.signals import sync_round_finished
from inventory.sync_loop import MAX_CHANGE_LINES
from kube.client import KubeError
from spawning.cleanup import sweep_orphans
from spawning.services import spawn_record_prune


@receiver(sync_round_finished, dispatch_uid="spawning.sweep_after_sync_round")
def sweep_after_sync_round(sender: Any, *, sync_round: SyncRound, report: Callable[[str], None], **kwargs: Any) -> None:
    """Delete what /prespawn made for notebooks gone longer than the grace period, then old spawn records.

    The sync's writer sends the signal, once per full round, so several replicas
    never sweep at once. Only a completed round sweeps; a sweep that fails is
    reported and tried again after the next one.
    """
    if sync_round.status != SyncRound.Status.COMPLETED:
        return
    try:
        swept = sweep_orphans(grace_seconds=settings.SWEEP_GRACE_SECONDS)
    except KubeError as exc:
        report(f"orphan sweep failed, will retry next round: {exc}")
        return
    if swept:
        report(f"orphan sweep deleted {len(swept)} objects")
        for ref in swept[:MAX_CHANGE_LINES]:
            report(f"  x {ref.kind} {ref.namespace}/{ref.name}")
    retention_days = settings.SPAWN_RECORD_RETENTION_DAYS
    pruned = spawn_record_prune(retention_days=retention_days)
    if pruned:
        report(f"deleted {pruned} spawn records older than {retention_days} days")
