"""The /options inventory snapshot is reused while nothing changed, and never outlives a change.

Every way the inventory is written — an operator's ORM save, an access rule's
links, the admin's bulk hide action, a sync round against the real apiserver —
must show in the very next options_data call.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kubernetes import client as k8s

from inventory.admin import hide_entries, unhide_entries
from inventory.models import AccessRule, HdfsInstance, Profile, SyncRound
from inventory.sync import sync_full_round
from spawning.selectors import inventory_freshness, options_data
from tests.hubapi import make_hdfs, make_preset, make_profile, offer_namespace
from tests.test_sync import delete_service, hdfs_service

pytestmark = pytest.mark.django_db

ARGS = {"username": "alice", "server_name": "", "groups": ["team"], "default_namespace": ""}


def _options(**overrides) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        data = options_data(**{**ARGS, **overrides})
    return len(captured.captured_queries), data


def _hdfs_ids(data: dict) -> list[str]:
    return [i["id"] for i in data["hdfs"]]


@pytest.fixture
def inventory() -> None:
    make_profile("plain", default=True)
    make_preset("small", default=True)
    offer_namespace("team-a")
    make_hdfs("team-a", "one")
    make_hdfs("team-a", "two")


def test_an_unchanged_inventory_is_read_once(inventory) -> None:
    first, data = _options()
    second, again = _options()
    third, other_user = _options(username="bob", groups=[])
    assert _hdfs_ids(data) == ["team-a:one", "team-a:two"]
    assert again == data
    # Only the generation, freshness and remembered choices (one query): the inventory is not read again.
    assert second == third == 1
    assert first > second
    assert _hdfs_ids(other_user) == _hdfs_ids(data)


def test_hiding_an_instance_in_the_admin_shows_at_once(inventory) -> None:
    _options()
    instance = HdfsInstance.objects.get(key="team-a:one")
    instance.hidden = True
    instance.save()
    assert _hdfs_ids(_options()[1]) == ["team-a:two"]


def test_an_item_changed_under_the_same_id_is_sent_changed(inventory) -> None:
    """Each offered item's wire form is kept by its value: a changed row is a new item, never the old dict."""
    before = _options()[1]
    instance = HdfsInstance.objects.get(key="team-a:one")
    instance.display_name = "Lake"
    instance.description = "The data lake"
    instance.save()
    after = next(i for i in _options()[1]["hdfs"] if i["id"] == "team-a:one")
    assert after["label"] == "Lake"
    assert after["description"] == "The data lake"
    assert next(i for i in before["hdfs"] if i["id"] == "team-a:one")["label"] != "Lake"


def test_the_admin_bulk_hide_and_unhide_actions_show_at_once(inventory, admin_user) -> None:
    _options()
    request = RequestFactory().post("/admin/")
    request.user = admin_user
    request._messages = _Messages()
    model_admin = site._registry[HdfsInstance]
    hide_entries(model_admin, request, HdfsInstance.objects.filter(key="team-a:two"))
    assert _hdfs_ids(_options()[1]) == ["team-a:one"]
    unhide_entries(model_admin, request, HdfsInstance.objects.filter(key="team-a:two"))
    assert _hdfs_ids(_options()[1]) == ["team-a:one", "team-a:two"]


class _Messages(list):
    """Just enough of the messages storage for an admin action's message_user."""

    def add(self, level: int, message: str, extra_tags: str = "") -> None:
        self.append(message)


def test_an_access_rule_link_change_shows_at_once(inventory) -> None:
    rule = AccessRule.objects.create(name="ops only", groups=["ops"])
    assert _hdfs_ids(_options()[1]) == ["team-a:one", "team-a:two"]
    # Naming the instance in a rule alice does not match takes it away from her.
    rule.hdfs_instances.add(HdfsInstance.objects.get(key="team-a:one"))
    assert _hdfs_ids(_options()[1]) == ["team-a:two"]
    assert _hdfs_ids(_options(groups=["ops"])[1]) == ["team-a:one", "team-a:two"]
    rule.hdfs_instances.clear()
    assert _hdfs_ids(_options()[1]) == ["team-a:one", "team-a:two"]


def test_a_new_profile_and_a_deleted_one_show_at_once(inventory) -> None:
    assert [p["slug"] for p in _options()[1]["profiles"]] == ["plain"]
    make_profile("spark", order=5)
    assert [p["slug"] for p in _options()[1]["profiles"]] == ["plain", "spark"]
    Profile.objects.filter(slug="spark").delete()
    assert [p["slug"] for p in _options()[1]["profiles"]] == ["plain"]


def test_the_snapshot_is_not_served_to_a_later_transaction_that_rolled_back_to_the_same_number(inventory) -> None:
    # Each bump gets a fresh token: a reused number after a rollback is still a new generation.
    from django.db import transaction

    _options()
    try:
        with transaction.atomic():
            make_profile("ghost")
            assert [p["slug"] for p in _options()[1]["profiles"]] == ["ghost", "plain"]
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    make_profile("real")
    assert [p["slug"] for p in _options()[1]["profiles"]] == ["plain", "real"]


@pytest.mark.kube
def test_a_sync_round_that_changes_a_row_shows_at_once(kube, core_v1: k8s.CoreV1Api, namespace: str) -> None:
    make_profile("plain", default=True)
    offer_namespace(namespace)
    name = hdfs_service(core_v1, namespace, "lake", port=8020)
    sync_full_round()
    key = f"{namespace}:lake"
    urls = {i["id"]: i["url"] for i in _options()[1]["hdfs"]}
    assert urls[key] == f"hdfs://{name}.{namespace}.svc:8020"
    _options()

    core_v1.patch_namespaced_service(name, namespace, [{"op": "replace", "path": "/spec/ports/1/port", "value": 9000}])
    sync_full_round()
    urls = {i["id"]: i["url"] for i in _options()[1]["hdfs"]}
    assert urls[key] == f"hdfs://{name}.{namespace}.svc:9000"

    delete_service(core_v1, namespace, name)
    sync_full_round()
    assert key not in _hdfs_ids(_options()[1])


def test_inventory_is_stale_when_the_latest_full_round_failed() -> None:
    now = timezone.now()
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, started_at=now, finished_at=now
    )
    assert inventory_freshness()["stale"] is False

    # The cluster unreachable: the full round fails, while a watch batch may still have completed since.
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL,
        status=SyncRound.Status.FAILED,
        started_at=now + timedelta(seconds=1),
        finished_at=now + timedelta(seconds=2),
        error="connection refused",
    )
    SyncRound.objects.create(
        kind=SyncRound.Kind.WATCH,
        status=SyncRound.Status.COMPLETED,
        started_at=now + timedelta(seconds=3),
        finished_at=now + timedelta(seconds=3),
    )
    freshness = inventory_freshness()
    assert freshness["stale"] is True
    assert freshness["last_synced_at"] == (now + timedelta(seconds=3)).isoformat()

    # A running round says nothing yet; the next completed full round clears it.
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL, status=SyncRound.Status.RUNNING, started_at=now + timedelta(seconds=4)
    )
    assert inventory_freshness()["stale"] is True
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL,
        status=SyncRound.Status.COMPLETED,
        started_at=now + timedelta(seconds=5),
        finished_at=now + timedelta(seconds=6),
    )
    assert inventory_freshness()["stale"] is False
