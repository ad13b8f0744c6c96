"""Kubernetes quantities are read exactly, in every notation the apiserver accepts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kube.discovery import pod_requests
from kube.quantity import QuantityError, milli, milli_map, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("1.5", Decimal("1.5")),
        ("2", Decimal(2)),
        ("2Gi", Decimal(2 * 2**30)),
        ("500M", Decimal(500_000_000)),
        ("1e3", Decimal(1000)),
        ("1E-2", Decimal("0.01")),
        ("128974848", Decimal(128974848)),
        ("129e6", Decimal(129_000_000)),
        ("123Mi", Decimal(123 * 2**20)),
        ("1Ki", Decimal(1024)),
        ("1k", Decimal(1000)),
        ("250u", Decimal("0.00025")),
        ("5n", Decimal("0.000000005")),
        (".5", Decimal("0.5")),
        ("+1", Decimal(1)),
        ("-1", Decimal(-1)),
        ("8Ei", Decimal(8 * 2**60)),
        ("1P", Decimal(10**15)),
    ],
)
def test_quantities_parse_exactly(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1.2.3", "1 Gi", "1gi", "1KB", "abc", "1e", "0x10"])
def test_not_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_milli_units_round_up_as_the_apiserver_does() -> None:
    assert milli("100m") == 100
    assert milli("0.5") == 500
    assert milli("1Gi") == 2**30 * 1000
    # Finer than a milli-unit rounds up, never to zero.
    assert milli("1n") == 1
    assert milli(2) == 2000
    assert milli(0.25) == 250


def test_a_resource_list_leaves_out_what_it_cannot_read() -> None:
    assert milli_map({"cpu": "2", "memory": "1Mi", "odd": "x"}) == {"cpu": 2000, "memory": 2**20 * 1000}
    assert milli_map(None) == {}


def test_a_pods_requests_count_sidecars_init_containers_and_overhead_as_the_scheduler_does() -> None:
    spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "250m", "nvidia.com/gpu": "1"}}},
        ],
        "initContainers": [
            # A sidecar runs alongside everything after it.
            {"restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
            # An ordinary init container runs alone (plus the sidecar): only its peak counts.
            {"resources": {"requests": {"cpu": "2", "memory": "512Mi"}}},
        ],
        "overhead": {"cpu": "10m"},
    }
    requests = pod_requests(spec)
    # max(0.5+0.25+0.1, 2+0.1) + overhead
    assert requests["cpu"] == 2110
    assert requests["memory"] == 2**30 * 1000
    assert requests["nvidia.com/gpu"] == 1000
    assert requests["pods"] == 1000


def test_a_pod_without_requests_still_takes_a_pod_slot() -> None:
    assert pod_requests({"containers": [{"name": "c"}]}) == {"pods": 1000}
