"""Signals the inventory sends, so other apps can hang work on the sync without the inventory importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by the writer's SyncLoop after each full round, completed or failed, with
# ``sync_round`` (the SyncRound just finished) and ``report`` (a callable taking one
# line for the sync's output). Sent with ``send_robust``: a receiver that raises is
# reported and the loop goes on. Work hung here runs in one process at a time.
sync_round_finished = Signal()
