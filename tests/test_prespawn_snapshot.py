"""/prespawn validates against the per-process inventory snapshot, and never against a stale one.

Each test first validates once, so the snapshot is built and current, then makes
an operator's edit and checks that the very next /prespawn enforces it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from spawning.models import SpawnRecord
from spawning.services import prespawn_validate
from spawning.snapshot import forget_snapshot
from tests.hubapi import (
    TOKEN,
    hub_client,
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    make_rule,
    offer_namespace,
    prespawn_body,
)

pytestmark = pytest.mark.django_db

TEAM = "team-a"


@pytest.fixture(autouse=True)
def inventory(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN
    forget_snapshot()
    offer_namespace(TEAM)
    make_profile("full", default=True, enable_hdfs=True, enable_gaffer=True)
    make_preset("small", default=True)


def _validate(*, groups: tuple[str, ...] = (), **options: str) -> Any:
    return prespawn_validate(
        username="alice",
        server_name="",
        pod_name="jupyter-alice",
        default_namespace=TEAM,
        profile="full",
        user_options={"profile": "full", "k8s_namespace": TEAM, **options},
        groups=groups,
    )


def _refusal(body: dict[str, Any], field: str) -> str:
    """Refused before anything is made, so no cluster is needed."""
    response = hub_client().post("/prespawn", body, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    assert list(payload["fields"]) == [field]
    assert SpawnRecord.objects.get().result == SpawnRecord.Result.REFUSED
    return payload["fields"][field][0]


def test_hiding_an_hdfs_instance_in_the_admin_is_enforced_by_the_next_prespawn(client: Client, django_user_model):
    lake = make_hdfs(TEAM, "lake")
    assert _validate(hdfs=lake.key).hdfs.id == lake.key

    operator = django_user_model.objects.create(username="operator", is_staff=True, is_superuser=True)
    client.force_login(operator)
    response = client.post(
        reverse("admin:inventory_hdfsinstance_changelist"),
        {"action": "hide_entries", "_selected_action": [lake.pk]},
    )
    assert response.status_code == 302

    reason = _refusal(prespawn_body(profile="full", namespace=TEAM, hdfs=lake.key), "hdfs")
    assert reason == f"There is no HDFS instance '{lake.key}' available."


def test_a_lowered_ceiling_is_enforced_by_the_next_prespawn() -> None:
    rule = make_rule("students", groups=["students"], max_cpu=2)
    assert _validate(groups=("students",), resources_cpu="2").cpu == Decimal("2")

    rule.max_cpu = Decimal("1")
    rule.save()

    body = {**prespawn_body(profile="full", namespace=TEAM, resources_cpu="2"), "groups": ["students"]}
    reason = _refusal(body, "resources_cpu")
    assert reason.startswith("2 is outside the allowed range")
    assert reason.endswith(" to 1 vCPU.")


def test_an_item_newly_named_by_a_rule_is_refused_to_others_by_the_next_prespawn() -> None:
    lake = make_hdfs(TEAM, "lake")
    assert _validate(hdfs=lake.key).hdfs.id == lake.key

    make_rule("insiders", groups=["insiders"], hdfs_instances=[lake])

    reason = _refusal(prespawn_body(profile="full", namespace=TEAM, hdfs=lake.key), "hdfs")
    assert reason == f"You may not use the HDFS instance '{lake.key}'."


def test_a_disabled_profile_is_still_told_apart_from_an_unknown_one() -> None:
    make_profile("retired", enabled=False)
    _validate()

    assert _refusal(prespawn_body(profile="retired", namespace=TEAM), "profile") == "The profile 'retired' is disabled."


def test_validation_with_a_current_snapshot_reads_only_the_generation() -> None:
    graph = make_graph(TEAM, "roads", labels={"app.kubernetes.io/instance": "roads-release"})
    make_hdfs(TEAM, "lake")
    _validate()

    with CaptureQueriesContext(connection) as captured:
        plan = _validate(hdfs=f"{TEAM}:lake", gaffer_graph=graph.key)

    assert len(captured.captured_queries) == 1
    # The graph's labels are left out of the snapshot, all but the one the plan needs.
    assert plan.gaffer.instance == "roads-release"
    assert plan.hdfs.url == "hdfs://lake-namenodes.team-a.svc:9820"
