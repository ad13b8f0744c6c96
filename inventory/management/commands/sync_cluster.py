"""Keep the inventory in line with the cluster: list, then watch; or one round with --once.

A thin entry point: the loop itself is ``inventory.sync_loop.SyncLoop``.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.models import SyncRound
from inventory.sync import WriterLock, sync_full_round
from inventory.sync_loop import SyncLoop, describe
from kube.discovery import DEFAULT_PAGE_SIZE


class Command(BaseCommand):
    help = "Discover HDFS, Gaffer graphs, service accounts, volumes and namespaces into the inventory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one full round and exit.")
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.SYNC_INTERVAL,
            help="Seconds between full resyncs (watches keep the inventory current in between).",
        )
        parser.add_argument("--watch-timeout", type=int, default=60, help="Seconds each watch request lasts.")
        parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="Objects per list page.")

    def handle(self, *args: Any, **options: Any) -> None:
        lock = WriterLock()
        if options["once"]:
            self.run_once(lock, page_size=options["page_size"])
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            self.stdout.write("stopping…")
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        loop = SyncLoop(
            interval=options["interval"],
            stop=stop,
            watch_timeout=options["watch_timeout"],
            page_size=options["page_size"],
            report=self.stdout.write,
            lock=lock,
            signal_rounds=True,
        )
        loop.run()
        if loop.lost_lock:
            raise CommandError("lost the writer lock")

    def run_once(self, lock: WriterLock, *, page_size: int) -> None:
        if not lock.acquire():
            self.stdout.write("another sync_cluster process is the writer: not writing")
            return
        try:
            sync_round, outcome = sync_full_round(page_size=page_size)
        finally:
            lock.release()
        self.stdout.write(describe(sync_round, outcome))
        if sync_round.status == SyncRound.Status.FAILED:
            raise CommandError(f"sync round failed: {sync_round.error}")
