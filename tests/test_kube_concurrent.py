"""kube.concurrent: calls side by side, results in call order, the most serious error raised.

Pure logic, so the calls are plain functions; the real apiserver calls that use
it are covered by the provisioning, cleanup and sync tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import pytest

from kube.client import KubeError, KubeForbidden, KubeNotFound, KubeUnavailable
from kube.concurrent import most_serious, run_all, run_all_pair, run_settled, run_settled_pair, values


def _value(value: object) -> object:
    return value


def _raise(error: KubeError) -> object:
    raise error


def test_results_come_in_call_order_with_errors_in_their_place() -> None:
    refused = KubeForbidden("refused", status=403)
    calls: list[Callable[[], object]] = [partial(_value, 1), partial(_raise, refused), partial(_value, 3)]
    assert run_settled(calls) == [1, refused, 3]
    assert run_settled([]) == []
    assert run_settled([partial(_raise, refused)]) == [refused]


def test_calls_really_run_side_by_side() -> None:
    # Each call waits for all the others: only concurrent calls can pass the barrier.
    barrier = threading.Barrier(4, timeout=5)
    assert sorted(run_all([barrier.wait for _ in range(4)])) == [0, 1, 2, 3]


def test_run_all_raises_an_unreachable_apiserver_before_a_refusal() -> None:
    refused = KubeForbidden("refused", status=403)
    down = KubeUnavailable("connection refused")
    with pytest.raises(KubeUnavailable) as raised:
        run_all([partial(_raise, refused), partial(_value, 2), partial(_raise, down)])
    assert raised.value is down
    with pytest.raises(KubeForbidden) as first:
        run_all([partial(_raise, refused), partial(_raise, KubeNotFound("gone", status=404))])
    assert first.value is refused
    assert run_all([partial(_value, "a"), partial(_value, "b")]) == ["a", "b"]


def test_other_exceptions_are_bugs_and_propagate() -> None:
    def broken() -> object:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_settled([partial(_value, 1), broken])


def test_pairs_hand_each_group_back_whole() -> None:
    refused = KubeForbidden("refused", status=403)
    numbers, words = run_settled_pair([partial(_value, 1), partial(_raise, refused)], [partial(_value, "x")])
    assert numbers == [1, refused]
    assert words == ["x"]
    assert run_settled_pair([], [partial(_value, "x")]) == ([], ["x"])
    assert run_all_pair([partial(_value, 1)], [partial(_value, "x"), partial(_value, "y")]) == ([1], ["x", "y"])


def test_a_pair_raises_the_most_serious_error_of_either_group() -> None:
    refused = KubeForbidden("refused", status=403)
    down = KubeUnavailable("connection refused")
    with pytest.raises(KubeUnavailable) as raised:
        run_all_pair([partial(_raise, refused)], [partial(_raise, down)])
    assert raised.value is down


def test_values_and_most_serious() -> None:
    refused = KubeForbidden("refused", status=403)
    down = KubeUnavailable("connection refused")
    assert values([1, 2]) == [1, 2]
    with pytest.raises(KubeForbidden):
        values([1, refused])
    assert most_serious([refused, down]) is down
    assert most_serious([refused, KubeNotFound("gone")]) is refused
