"""Keep the inventory in line with the cluster: list, then watch; or one round with --once."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from inventory.models import SyncRound
from inventory.sync import Change, ClusterState, Outcome, Relist, WriterLock, sync_apply, sync_full_round
from kube.client import KubeError, KubeGone
from kube.discovery import DEFAULT_PAGE_SIZE, EventType, Kind, Listing, WatchEvent, list_objects, watch_objects
from spawning.cleanup import sweep_orphans
from spawning.services import spawn_record_prune

logger = logging.getLogger("optionsportal.sync")

MAX_BACKOFF_SECONDS = 60.0
MAX_CHANGE_LINES = 50
# At most this many queued events go into one database transaction.
MAX_BATCH = 5000

WatchFn = Callable[..., Iterator[WatchEvent]]
ListFn = Callable[..., Listing]


def backoff_seconds(failures: int, *, cap: float = MAX_BACKOFF_SECONDS) -> float:
    return min(cap, 2.0 ** max(0, failures - 1))


class KindWatcher(threading.Thread):
    """The one list→watch stream for one kind; it only reads the cluster and queues what it sees.

    A watch that the server ends is resumed from the last resourceVersion; on
    410 Gone or a dropped connection the kind is listed again (the database
    learns the new list as a Relist) and watched from that list's version.
    """

    def __init__(
        self,
        kind: Kind,
        *,
        resource_version: str | None,
        out: queue.Queue[Change | Relist],
        stop: threading.Event,
        watch_timeout: int,
        page_size: int = DEFAULT_PAGE_SIZE,
        watch: WatchFn = watch_objects,
        lister: ListFn = list_objects,
    ) -> None:
        super().__init__(name=f"watch-{kind.value}", daemon=True)
        self.kind = kind
        self.resource_version = resource_version
        self.out = out
        self.stop = stop
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.watch = watch
        self.lister = lister
        self.failures = 0
        self.relists = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.resource_version is None:
                    listing = self.lister(self.kind, page_size=self.page_size)
                    self.relists += 1
                    self.out.put(Relist(listing))
                    self.resource_version = listing.resource_version
                self.watch_once(self.resource_version)
                self.failures = 0
            except KubeGone as exc:
                logger.info("%s watch expired (%s): listing again", self.kind, exc)
                self.resource_version = None
            except KubeError as exc:
                self.failures += 1
                delay = backoff_seconds(self.failures)
                logger.warning("%s watch failed (%s): listing again in %.0f s", self.kind, exc, delay)
                self.resource_version = None
                self.stop.wait(delay)

    def watch_once(self, resource_version: str) -> None:
        for event in self.watch(self.kind, resource_version=resource_version, timeout_seconds=self.watch_timeout):
            if event.type is not EventType.BOOKMARK:
                self.out.put(Change(self.kind, event))
            self.resource_version = event.resource_version or self.resource_version
            if self.stop.is_set():
                return


class SyncLoop:
    """The long-running sync: periodic full rounds plus the watchers' changes in between.

    Only this object's thread writes to the database; the watchers only read
    the cluster. ``step`` does one unit of work and says whether more is
    waiting, so tests can drive it directly.
    """

    def __init__(
        self,
        *,
        interval: float,
        stop: threading.Event | None = None,
        watch_timeout: int = 60,
        page_size: int = DEFAULT_PAGE_SIZE,
        report: Callable[[str], None] | None = None,
        lock: WriterLock | None = None,
        watch: WatchFn = watch_objects,
        sweep_grace_seconds: int | None = None,
    ) -> None:
        self.interval = interval
        self.stop = stop or threading.Event()
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.report = report or logger.info
        self.lock = lock or WriterLock()
        self.watch = watch
        self.state = ClusterState()
        self.queue: queue.Queue[Change | Relist] = queue.Queue()
        self.watchers: dict[Kind, KindWatcher] = {}
        self.next_full_round = 0.0
        self.failures = 0
        self.lost_lock = False
        self.sweep_grace_seconds = sweep_grace_seconds

    def run(self) -> None:
        try:
            if not self.wait_for_lock():
                return
            while not self.stop.is_set():
                self.step()
        finally:
            self.stop.set()
            # Watchers notice the stop flag after their current watch request;
            # they are daemons, so a shutdown waits for them only briefly.
            deadline = time.monotonic() + 2.0
            for watcher in self.watchers.values():
                watcher.join(timeout=max(0.0, deadline - time.monotonic()))
            self.lock.release()
            connections.close_all()

    def wait_for_lock(self) -> bool:
        announced = False
        while not self.stop.is_set():
            if self.lock.acquire():
                if announced:
                    self.report("took over as the writer")
                return True
            if not announced:
                self.report("another sync_cluster process is the writer: standing by")
                announced = True
            self.stop.wait(min(self.interval, 10.0))
        return False

    def step(self) -> bool:
        """Run a full round when due, else apply queued changes; True if more work is waiting.

        A database failure (PostgreSQL restarting, a connection cut) ends the step, not
        the process: it is reported, the broken connection dropped, and the next full
        round is retried with backoff.
        """
        try:
            return self._step()
        except DatabaseError as exc:
            self.failures += 1
            delay = backoff_seconds(self.failures)
            self.report(f"database error, retrying in {delay:.0f} s: {exc}")
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()
            self.next_full_round = time.monotonic() + delay
            self.stop.wait(delay)
            return False

    def _step(self) -> bool:
        if time.monotonic() >= self.next_full_round:
            self.full_round()
            return True
        wait = max(0.0, min(self.next_full_round - time.monotonic(), 1.0))
        try:
            items = [self.queue.get(timeout=wait)]
        except queue.Empty:
            return False
        while len(items) < MAX_BATCH:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        # Checked before every write, not only at full rounds: a writer whose lock
        # connection dropped must not keep writing beside the one that took over.
        if not self.lock.still_held():
            self.lost_lock = True
            self.report("lost the writer lock: stopping")
            self.stop.set()
            return False
        sync_round, outcome = sync_apply(state=self.state, items=items)
        if sync_round is not None:
            self.report(describe(sync_round, outcome))
        return not self.queue.empty()

    def full_round(self) -> None:
        if not self.lock.still_held():
            self.lost_lock = True
            self.report("lost the writer lock: stopping")
            self.stop.set()
            return
        # Changes still queued from before this list need no draining first:
        # ClusterState skips those the list already holds.
        sync_round, outcome = sync_full_round(state=self.state, page_size=self.page_size)
        self.report(describe(sync_round, outcome))
        if sync_round.status == SyncRound.Status.FAILED:
            self.failures += 1
            delay = min(self.interval, backoff_seconds(self.failures))
        else:
            self.failures = 0
            delay = self.interval
            self.sweep()
        self.next_full_round = time.monotonic() + delay
        self.ensure_watchers()

    def sweep(self) -> None:
        """Delete what /prespawn made for notebooks gone longer than the grace period.

        It runs in the writer only, once per successful full round, so several
        replicas never sweep at once; a failure is reported and retried next round.
        """
        if self.sweep_grace_seconds is None:
            return
        try:
            swept = sweep_orphans(grace_seconds=self.sweep_grace_seconds)
        except KubeError as exc:
            self.report(f"orphan sweep failed, will retry next round: {exc}")
            return
        if swept:
            self.report(f"orphan sweep deleted {len(swept)} objects")
            for ref in swept[:MAX_CHANGE_LINES]:
                self.report(f"  x {ref.kind} {ref.namespace}/{ref.name}")
        pruned = spawn_record_prune(retention_days=settings.SPAWN_RECORD_RETENTION_DAYS)
        if pruned:
            self.report(f"deleted {pruned} spawn records older than {settings.SPAWN_RECORD_RETENTION_DAYS} days")

    def ensure_watchers(self) -> None:
        """One watcher per listed kind, started from that list's version; never two."""
        for kind in Kind:
            if kind not in self.state.listed:
                continue
            current = self.watchers.get(kind)
            if current is not None and current.is_alive():
                continue
            watcher = KindWatcher(
                kind,
                resource_version=str(self.state.list_versions[kind]),
                out=self.queue,
                stop=self.stop,
                watch_timeout=self.watch_timeout,
                page_size=self.page_size,
                watch=self.watch,
            )
            self.watchers[kind] = watcher
            watcher.start()


def describe(sync_round: SyncRound, outcome: Outcome) -> str:
    """A summary line and one line per added/changed/missing/returned row."""
    took = sync_round.duration_seconds or 0.0
    lines = [
        f"{sync_round.get_kind_display()} {sync_round.status} in {took:.2f} s: "
        f"{sync_round.objects_seen} objects, {outcome.added} added, {outcome.changed} changed, "
        f"{outcome.marked_missing} missing, {outcome.returned} back"
    ]
    symbols = {"added": "+", "changed": "~", "marked_missing": "-", "returned": "^"}
    for action, target, key in outcome.changes[:MAX_CHANGE_LINES]:
        lines.append(f"  {symbols[action]} {target} {key}")
    if len(outcome.changes) > MAX_CHANGE_LINES:
        lines.append(f"  … and {len(outcome.changes) - MAX_CHANGE_LINES} more")
    lines.extend(f"  error: {error}" for error in outcome.errors)
    return "\n".join(lines)


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
            sweep_grace_seconds=settings.SWEEP_GRACE_SECONDS,
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
