"""Removing what /prespawn made: at /poststop, and by a periodic sweep for notebooks that are gone.

Nothing we make has an owner reference (at /prespawn the pod does not exist
yet), so objects are found by our labels and judged by our annotations: the raw
username and server name, the pod name, and when we last applied them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

from kube.concurrent import run_all, run_all_pair
from kube.names import POD_LABEL_SERVER, POD_LABEL_USER
from kube.provision import (
    KINDS,
    LabelledObject,
    ObjectRef,
    delete_object,
    list_kind,
    list_labelled,
    list_pods,
    pods_exist,
)
from spawning.labels import (
    ANNOTATION_LAST_APPLIED,
    ANNOTATION_POD_NAME,
    LABEL_SERVERNAME,
    LABEL_USERNAME,
    NOTEBOOK_PODS_SELECTOR,
    OUR_OBJECTS_SELECTOR,
    owned_by,
    owner_selector,
)

logger = logging.getLogger(__name__)


def poststop_cleanup(*, username: str, server_name: str) -> list[ObjectRef]:
    """Delete every object we made for this user's server, in any namespace; returns what went.

    Raises a KubeError if listing fails or any delete fails (the caller answers
    503 and the hub may call again: deleting is idempotent).
    """
    selector = owner_selector(username, server_name)
    found = list_labelled(selector)
    ours = [item.ref for item in found if owned_by(item, username, server_name)]
    return _delete(ours)


def sweep_orphans(*, grace_seconds: int, now: datetime | None = None) -> list[ObjectRef]:
    """Delete our objects whose notebook pod is gone and which were last applied over ``grace_seconds`` ago.

    A notebook counts as alive while a pod with its labels exists in the
    object's namespace, or while the pod named at /prespawn exists there (for a
    hub that did not apply our ``labels``). The grace period also covers the
    time between /prespawn and the pod's creation.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    # All or nothing: a partial view could make a live notebook's objects look orphaned.
    listings, (pods,) = run_all_pair(
        [partial(list_kind, kind, OUR_OBJECTS_SELECTOR) for kind in KINDS],
        [partial(list_pods, NOTEBOOK_PODS_SELECTOR)],
    )
    alive = {(pod.namespace, pod.labels.get(POD_LABEL_USER), pod.labels.get(POD_LABEL_SERVER)) for pod in pods}

    expired: list[LabelledObject] = []
    for listed in listings:
        for item in listed:
            key = (item.ref.namespace, item.labels.get(LABEL_USERNAME), item.labels.get(LABEL_SERVERNAME))
            if key in alive:
                continue
            age = _age_seconds(item, moment)
            if age is not None and age > grace_seconds:
                expired.append(item)

    by_pod = sorted(
        {
            (item.ref.namespace, item.annotations[ANNOTATION_POD_NAME])
            for item in expired
            if item.annotations.get(ANNOTATION_POD_NAME)
        }
    )
    named_pods = pods_exist(by_pod) if by_pod else {}
    orphans = [
        item.ref
        for item in expired
        if not named_pods.get((item.ref.namespace, item.annotations.get(ANNOTATION_POD_NAME, "")), False)
    ]
    deleted = _delete(orphans)
    if deleted:
        logger.info("swept %d orphaned object(s)", len(deleted))
    return deleted


def _age_seconds(item: LabelledObject, now: datetime) -> float | None:
    """Seconds since we last applied it, or since it was created when the annotation is missing or bad."""
    for stamp in (item.annotations.get(ANNOTATION_LAST_APPLIED, ""), item.created_at):
        parsed = _parse_time(stamp)
        if parsed is not None:
            return (now - parsed).total_seconds()
    return None


def _parse_time(stamp: str) -> datetime | None:
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _delete(refs: Sequence[ObjectRef]) -> list[ObjectRef]:
    if not refs:
        return []
    ordered = sorted(refs)
    # delete_object treats "already gone" as done, so every ref is gone once no call failed.
    run_all([partial(delete_object, ref) for ref in ordered])
    return ordered
