"""The /options replies a worker has sent, kept by everything a reply is drawn from.

A reply depends on the inventory snapshot (spawning/snapshot.py: one per inventory
generation), the user, their groups, server and default namespace, their remembered
choices, the sync's freshness and what offered kinds read apart from the snapshot
(``OfferedKind.volatile_key``: the nodes' free capacity); the key holds all of them,
so a hit is the reply that would be computed again. Drawing and serializing the form
is most of an /options request: at bench/portal_bench.py's inventory 18.4 million
instructions a request without the cache, 2.9 million with it (docs/benchmarks.md,
2026-12-02); a hit costs the one query that reads the request's state.

Kept gzipped (a 73 KB form is 13.5 KB at level 1, compressed in 0.4 ms), and bounded
by those bytes, least recently used first out: JupyterHub's HTTP client asks for gzip
and gets the kept bytes as they are; a client that does not gets them inflated
(0.1 ms).
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Hashable


class CachedReply:
    """One reply's bytes, gzipped."""

    __slots__ = ("gzipped", "key")

    def __init__(self, body: bytes, key: Hashable = None) -> None:
        # mtime=0: the same reply always compresses to the same bytes.
        self.gzipped = gzip.compress(body, compresslevel=1, mtime=0)
        self.key = key

    @property
    def body(self) -> bytes:
        return gzip.decompress(self.gzipped)

    @property
    def size(self) -> int:
        return len(self.gzipped)


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
            while self._size > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._size -= dropped.size
        return entry

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0
