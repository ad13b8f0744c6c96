"""One /prespawn or /poststop at a time for each (user, server), across every web worker.

Two overlapping calls for the same server could otherwise undo or prune each
other's objects half-way (a failed call deletes what it created; a successful
one deletes what its plan no longer needs). On PostgreSQL a session advisory
lock serialises them across processes and replicas; on SQLite (the quick
start, one machine) a process-local lock does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

_local_locks: dict[int, threading.Lock] = {}
_local_guard = threading.Lock()
# A namespace for our advisory locks, so they never meet the sync's writer lock.
SERVER_LOCK_CLASS = 0x4F50  # "OP"


def server_lock_key(username: str, server_name: str) -> int:
    digest = hashlib.blake2b(f"{username}\0{server_name}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def server_lock(*, username: str, server_name: str) -> Iterator[None]:
    key = server_lock_key(username, server_name)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [SERVER_LOCK_CLASS, key])
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SERVER_LOCK_CLASS, key])
            except DatabaseError as exc:
                # The lock lives in the session: closing it frees the lock, and a failure here
                # must not turn a spawn that was applied (and recorded) into an error.
                logger.warning("could not unlock the server lock; closing the connection: %s", exc)
                connection.close()
        return
    with _local_guard:
        lock = _local_locks.setdefault(key, threading.Lock())
    with lock:
        yield
