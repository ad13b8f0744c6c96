"""Running pods' requests written as the sync's pod watch writes them: the PodRequest rows and the node's sums."""

from __future__ import annotations

from collections.abc import Mapping

from django.utils import timezone

from inventory.sync import TARGETS, Outcome, reconcile

_PODS = next(target for target in TARGETS if target.name == "pods")


def store_pod(key: str, node_name: str, requests: Mapping[str, int]) -> None:
    """Pod ``namespace:name`` bound to ``node_name`` holding ``requests`` (milli-units), as one watch event leaves it."""
    desired = {key: {"node_name": node_name, "requests": dict(requests)}}
    reconcile(target=_PODS, desired=desired, keys={key}, now=timezone.now(), outcome=Outcome())


def remove_pod(key: str) -> None:
    """The pod ended: its rows go and its node's sums drop, as on a DELETED event."""
    reconcile(target=_PODS, desired={}, keys={key}, now=timezone.now(), outcome=Outcome())


def store_pods(pods: Mapping[str, tuple[str, Mapping[str, int]]]) -> None:
    """Many pods at once (key → node, requests), as one batch of watch events leaves them."""
    desired = {key: {"node_name": node, "requests": dict(requests)} for key, (node, requests) in pods.items()}
    reconcile(target=_PODS, desired=desired, keys=set(desired), now=timezone.now(), outcome=Outcome())
