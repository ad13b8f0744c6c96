"""The /options replies a worker has sent, kept by everything a reply is drawn from.

A reply depends on the inventory snapshot (spawning/snapshot.py: one per inventory
generation), the user, their groups, server and default namespace, their remembered
choices and the sync's freshness; the key holds all of them, so a hit is the reply
that would be computed again. Drawing and serializing the form is about 90 % of an
/options request (docs/benchmarks.md, 2026-12-02); a hit costs the one query that
reads the request's state.

Bounded by bytes, least recently used first out. The gzip form is made on the first
request that accepts it and kept beside the plain one: JupyterHub's HTTP client asks
for gzip, and a 70 KB form compresses to about a tenth.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Hashable


class CachedReply:
    """One reply's bytes, plain and (once asked for) gzipped."""

    __slots__ = ("_gzipped", "body", "key")

    def __init__(self, body: bytes, key: Hashable = None) -> None:
        self.body = body
        self.key = key
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = _compress(self.body)
        return self._gzipped

    @property
    def size(self) -> int:
        return len(self.body) + len(self._gzipped or b"")


class ReplyCache:
    """A thread-safe LRU of ``CachedReply`` bounded by the bytes it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedReply] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> CachedReply | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, body: bytes) -> CachedReply:
        entry = CachedReply(body, key)
        if entry.size > self.max_bytes:
            return entry
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self._size -= replaced.size
            self._entries[key] = entry
            self._size += entry.size
            self._shrink()
        return entry

    def gzipped(self, entry: CachedReply) -> bytes:
        """The gzip form of ``entry``; kept with it, and what it adds counts against the bound."""
        if entry._gzipped is not None:
            return entry._gzipped
        compressed = _compress(entry.body)
        with self._lock:
            if entry._gzipped is None:
                entry._gzipped = compressed
                if self._entries.get(entry.key) is entry:
                    self._size += len(compressed)
                    self._shrink()
            return entry._gzipped

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0

    def _shrink(self) -> None:
        while self._size > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._size -= dropped.size


def _compress(body: bytes) -> bytes:
    # mtime=0: the same reply always compresses to the same bytes.
    return gzip.compress(body, compresslevel=6, mtime=0)
