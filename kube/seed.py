"""Apply arbitrary example objects (namespaces, services, accounts, claims): the quick start's demo cluster.

The portal itself only ever applies what ``kube.provision`` knows; this is for
putting a cluster into a known state, with the same server-side apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from kubernetes import client

from kube.client import api_client, request_timeout, translate

_APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
# kind → (method suffix, namespaced); all of them are core/v1.
_CORE_KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespace", False),
    "Service": ("namespaced_service", True),
    "ConfigMap": ("namespaced_config_map", True),
    "Secret": ("namespaced_secret", True),
    "ServiceAccount": ("namespaced_service_account", True),
    "PersistentVolumeClaim": ("namespaced_persistent_volume_claim", True),
}


def apply_manifests(manifests: Sequence[Mapping[str, Any]]) -> list[str]:
    """Server-side apply each manifest in order (namespaces first); returns ``Kind namespace/name`` of each."""
    api = client.CoreV1Api(api_client())
    applied = []
    for manifest in manifests:
        kind = manifest["kind"]
        if kind not in _CORE_KINDS:
            raise ValueError(f"{kind} is not a kind the demo seeds")
        suffix, namespaced = _CORE_KINDS[kind]
        metadata = manifest["metadata"]
        args: list[Any] = [metadata["name"], metadata["namespace"]] if namespaced else [metadata["name"]]
        what = f"{kind} {metadata.get('namespace', '')}/{metadata['name']}".replace(" /", " ")
        try:
            getattr(api, f"patch_{suffix}")(
                *args,
                dict(manifest),
                field_manager=f"{settings.KUBE_FIELD_MANAGER}-demo",
                force=True,
                _content_type=_APPLY_CONTENT_TYPE,
                _preload_content=False,
                _request_timeout=request_timeout(),
            )
        except Exception as exc:
            raise translate(exc, f"applying {what}") from exc
        applied.append(what)
    return applied
