"""Objects anyone with a namespace can make must not stop the sync for everybody."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from inventory.models import NotebookVolume, ServiceAccount, SyncRound
from inventory.sync import sync_full_round

pytestmark = [pytest.mark.kube, pytest.mark.django_db]

VOLUME_LABELS = {"app.kubernetes.io/name": "jupyterhub", "app.kubernetes.io/component": "notebook-volume"}


def _claim(core: k8s.CoreV1Api, ns: str, name: str, *, labels: dict, annotations: dict) -> None:
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": name, "labels": {**VOLUME_LABELS, **labels}, "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )


def test_over_long_and_nul_annotations_are_stored_cut_and_cleaned(kube, core_v1, namespace: str) -> None:
    _claim(
        core_v1,
        namespace,
        "claim-long",
        labels={},
        annotations={"hub.jupyter.org/username": "u" * 300, "hub.jupyter.org/volume-name": "a\x00b"},
    )
    core_v1.create_namespaced_service_account(
        namespace,
        {
            "metadata": {
                "name": "odd",
                "labels": {"hub.jupyter.org/notebook-service-account": ""},
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/" + "r" * 3000},
            }
        },
    )

    sync_round, _ = sync_full_round()

    assert sync_round.status == SyncRound.Status.COMPLETED, sync_round.error
    volume = NotebookVolume.objects.get(key=f"{namespace}:claim-long")
    assert volume.owner_username == "u" * 255
    assert volume.volume_name == "ab"
    assert "\x00" not in str(volume.annotations)
    account = ServiceAccount.objects.get(key=f"{namespace}:odd")
    assert len(account.observed_role_arn) == 2048


def test_raw_owner_and_label_owner_are_kept_apart(kube, core_v1, namespace: str) -> None:
    _claim(
        core_v1,
        namespace,
        "claim-label-only",
        labels={"hub.jupyter.org/username": "jo-smith--47fb644b778d"},
        annotations={},
    )
    _claim(
        core_v1,
        namespace,
        "claim-both",
        labels={"hub.jupyter.org/username": "alice-2esmith"},
        annotations={"hub.jupyter.org/username": "alice.smith"},
    )

    sync_round, _ = sync_full_round()
    assert sync_round.status == SyncRound.Status.COMPLETED, sync_round.error

    label_only = NotebookVolume.objects.get(key=f"{namespace}:claim-label-only")
    assert (label_only.owner_username, label_only.owner_label) == ("", "jo-smith--47fb644b778d")
    both = NotebookVolume.objects.get(key=f"{namespace}:claim-both")
    assert (both.owner_username, both.owner_label) == ("alice.smith", "alice-2esmith")
