"""Signals the inventory sends, so other apps can hang work on the sync without the inventory importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by the writer's SyncLoop after each full round, completed or failed, with
# ``sync_round`` (the SyncRound just finished) and ``report`` (a callable taking one
# line for the sync's output). Sent with ``send_robust``: a receiver that raises is
# reported and the loop goes on. Work hung here runs in one process at a time.
sync_round_finished = Signal()

# Sent by import_config before it reads anything, with ``source`` (the folder or values
# file, as text), ``helm_values`` (whether it is a values file), ``dry_run`` and
# ``run_by`` (--user, or the operating-system user). Receivers may attribute the
# writes that follow, in this thread, to the run.
config_import_started = Signal()

# Sent by import_config when the run ends, after its transaction committed or rolled back,
# with ``report`` (the ImportReport, None when it failed), ``lines`` (what it printed)
# and ``error`` (why it failed, or "").
config_import_finished = Signal()
