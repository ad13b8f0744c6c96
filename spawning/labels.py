"""Labels and annotations of everything /prespawn makes, and the metadata every manifest carries.

Cleanup and the sweep find our objects by these; the notebook pod gets
``notebook_labels`` through the reply, and the Spark driver Service selects it by them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optionsportal
from kube import names
from kube.names import POD_LABEL_ROLE, POD_LABEL_SERVER, POD_LABEL_USER, ROLE_NOTEBOOK
from kube.provision import LabelledObject

if TYPE_CHECKING:
    from spawning.plan import SpawnPlan

APP_NAME = "jhub-notebook-config"
MANAGED_BY = "options-portal"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_USERNAME = "hub.jupyter.org/username"
LABEL_SERVERNAME = "hub.jupyter.org/servername"
ANNOTATION_USERNAME = "optionsportal.io/username"
ANNOTATION_SERVERNAME = "optionsportal.io/servername"
ANNOTATION_POD_NAME = "optionsportal.io/pod-name"
ANNOTATION_LAST_APPLIED = "optionsportal.io/last-applied"

OUR_OBJECTS_SELECTOR = f"{LABEL_NAME}={APP_NAME},{LABEL_MANAGED_BY}={MANAGED_BY}"
NOTEBOOK_PODS_SELECTOR = f"{POD_LABEL_ROLE}={ROLE_NOTEBOOK}"


def notebook_labels(plan: SpawnPlan) -> dict[str, str]:
    """Labels for the notebook pod (returned as ``labels``); the Spark driver Service selects them."""
    return {
        POD_LABEL_USER: names.label_value(plan.username),
        POD_LABEL_SERVER: names.label_value(plan.server_name),
        POD_LABEL_ROLE: ROLE_NOTEBOOK,
    }


def owner_selector(username: str, server_name: str) -> str:
    """The label selector for every object we made for one user's server."""
    return (
        f"{OUR_OBJECTS_SELECTOR},{LABEL_USERNAME}={names.label_value(username)},"
        f"{LABEL_SERVERNAME}={names.label_value(server_name)}"
    )


def owned_by(found: LabelledObject, username: str, server_name: str) -> bool:
    """Labels select by the hashed form; the raw annotations make a hash collision harmless."""
    return (
        found.annotations.get(ANNOTATION_USERNAME) == username
        and found.annotations.get(ANNOTATION_SERVERNAME) == server_name
    )


def object_metadata(plan: SpawnPlan, *, name: str, component: str, applied_at: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": plan.namespace,
        "labels": {
            LABEL_NAME: APP_NAME,
            LABEL_COMPONENT: component,
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_VERSION: optionsportal.__version__,
            LABEL_USERNAME: names.label_value(plan.username),
            LABEL_SERVERNAME: names.label_value(plan.server_name),
        },
        "annotations": {
            ANNOTATION_USERNAME: plan.username,
            ANNOTATION_SERVERNAME: plan.server_name,
            ANNOTATION_POD_NAME: plan.pod_name,
            ANNOTATION_LAST_APPLIED: applied_at,
        },
    }


def object_name(plan: SpawnPlan, prefix: str) -> str:
    """``<prefix>-<user>[-<server>]``, injective for any username (kube/names.py)."""
    return names.object_name(prefix, plan.username, plan.server_name)
