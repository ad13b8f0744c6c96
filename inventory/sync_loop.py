"""The long-running sync: periodic full rounds, and the watchers' changes in between.

``sync_cluster`` runs a ``SyncLoop`` until told to stop. After each full round
the loop sends ``inventory.signals.sync_round_finished``; other apps hang their
periodic work on it (spawning sweeps orphaned notebook objects there), so the
inventory never imports them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from django.db import DatabaseError, connections

from inventory.models import SyncRound
from inventory.signals import sync_round_finished
from inventory.sync import Change, ClusterState, Outcome, Relist, WriterLock, sync_apply, sync_full_round
from kube.client import KubeError, KubeGone
from kube.discovery import DEFAULT_PAGE_SIZE, EventType, Kind, Listing, WatchEvent, list_objects, watch_objects

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
    waiting, so tests can drive it directly. With ``signal_rounds`` (as
    ``sync_cluster`` runs it) each full round is announced to the
    ``sync_round_finished`` receivers; loops in tests and benchmarks leave it
    off, so no clean-up runs behind their backs.
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
        signal_rounds: bool = False,
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
        self.signal_rounds = signal_rounds

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
            _drop_broken_connections()
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
        self.next_full_round = time.monotonic() + delay
        self.ensure_watchers()
        if self.signal_rounds:
            self.announce(sync_round)

    def announce(self, sync_round: SyncRound) -> None:
        """Tell the receivers a full round finished; one that fails is reported, never fatal.

        Sent from the writer only, so work hung on it (the orphan sweep) never
        runs in two replicas at once.
        """
        # send_robust logs each receiver's traceback (logger "django.dispatch").
        responses = sync_round_finished.send_robust(sender=type(self), sync_round=sync_round, report=self.report)
        for receiver, response in responses:
            if isinstance(response, Exception):
                name = getattr(receiver, "__qualname__", repr(receiver))
                self.report(f"{name} failed, will run again after the next round: {response}")
                if isinstance(response, DatabaseError):
                    _drop_broken_connections()

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


def _drop_broken_connections() -> None:
    for connection in connections.all():
        connection.close_if_unusable_or_obsolete()


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
