"""Running several apiserver calls side by side, and reporting their errors as one.

Each call is one HTTP request that mostly waits, so a small shared thread pool
turns N round trips into about one. Two shapes cover every caller:
``run_all`` when any failure fails the whole, ``run_settled`` when each call's
own outcome matters (undoing what was made before a sibling failed). The
``_pair`` forms run two groups of differently typed calls in the same batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

from kube.client import KubeError, KubeUnavailable

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

_MAX_WORKERS = 16

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    # Made on first use, not at import, so a forking server (gunicorn) never
    # inherits a pool whose threads do not exist in the child.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="kube-call")
        return _pool


def run_settled(calls: Sequence[Callable[[], T]]) -> list[T | KubeError]:
    """Run calls side by side; each result, in call order, is its value or the KubeError it raised.

    Any other exception is a bug and propagates. Not to be called from inside
    one of the calls: a pooled task waiting on the same pool could starve it
    when many requests arrive at once.
    """
    if not calls:
        return []
    if len(calls) == 1:
        return [_capture(calls[0])]
    return list(_executor().map(_capture, calls))


def run_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run calls side by side and return their values in call order; raise the most serious error."""
    return values(run_settled(calls))


def run_settled_pair(
    first: Sequence[Callable[[], A]], second: Sequence[Callable[[], B]]
) -> tuple[list[A | KubeError], list[B | KubeError]]:
    """Two groups of calls in one batch, their settled results handed back group by group."""
    calls: list[Callable[[], A | B]] = [*first, *second]
    results = run_settled(calls)
    # Results come in call order: the first group's, then the second's.
    return (
        cast("list[A | KubeError]", results[: len(first)]),
        cast("list[B | KubeError]", results[len(first) :]),
    )


def run_all_pair(first: Sequence[Callable[[], A]], second: Sequence[Callable[[], B]]) -> tuple[list[A], list[B]]:
    """Two groups of calls in one batch; raise the most serious error of either group."""
    settled_first, settled_second = run_settled_pair(first, second)
    _raise_most_serious([*settled_first, *settled_second])
    return cast("list[A]", settled_first), cast("list[B]", settled_second)


def values(results: Sequence[T | KubeError]) -> list[T]:
    """The results' values; raise the most serious error among them, if any."""
    _raise_most_serious(results)
    return cast("list[T]", list(results))


def _raise_most_serious(results: Sequence[object]) -> None:
    errors = [result for result in results if isinstance(result, KubeError)]
    if errors:
        raise most_serious(errors)


def most_serious(errors: Sequence[KubeError]) -> KubeError:
    """An unreachable apiserver explains the rest, so report it before a single refusal."""
    for error in errors:
        if isinstance(error, KubeUnavailable):
            return error
    return errors[0]


def _capture(call: Callable[[], T]) -> T | KubeError:
    try:
        return call()
    except KubeError as exc:
        return exc
