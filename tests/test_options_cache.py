"""/options replies kept per worker: a hit is the reply computed afresh, and every input of a reply is in its key.

Also: the gzip form JupyterHub's client asks for, the previous snapshot served while
the current one is built in the background (committed data, a thread of its own), and
the warm-up a gunicorn worker runs before its first request.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.models import HdfsInstance, SyncRound
from spawning import selectors, snapshot
from spawning.models import RememberedChoices
from spawning.reply_cache import CachedReply, ReplyCache
from tests.hubapi import TOKEN, hub_client, make_hdfs, make_preset, make_profile, make_rule, offer_namespace

BODY = {"username": "alice", "server_name": "", "groups": ["team"], "default_namespace": "team-a"}


def _post(body: dict | None = None, **headers: str) -> tuple[int, bytes, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = hub_client().post("/options", {**BODY, **(body or {})}, format="json", **headers)
    assert response.status_code == 200, response.content[:300]
    return len(captured.captured_queries), response.content, response


def _json(content: bytes) -> dict:
    return json.loads(content)


def _fresh(body: dict | None = None) -> bytes:
    """The same request with nothing kept: what a hit must equal."""
    selectors.forget_replies()
    return _post(body)[1]


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def inventory() -> None:
    make_profile("plain", default=True)
    make_preset("small", default=True)
    offer_namespace("team-a")
    make_hdfs("team-a", "one")
    make_hdfs("team-a", "two")


@pytest.mark.django_db
def test_a_repeated_request_is_answered_from_the_kept_reply_with_the_same_bytes(inventory) -> None:
    _post()
    queries, kept, _ = _post()
    assert queries == 1  # the request's state: generation, freshness, remembered choices
    assert kept == _fresh()
    assert "html" in _json(kept)


@pytest.mark.django_db
def test_every_input_of_a_reply_is_in_its_key(inventory) -> None:
    base = _post()[1]

    # The user, their groups, server and default namespace.
    for change in ({"username": "bob"}, {"groups": ["other"]}, {"server_name": "gpu"}, {"default_namespace": ""}):
        first = _post(change)[1]
        assert first == _fresh(change)
        assert _json(first)["username"] == change.get("username", "alice")
    assert _post()[1] == base

    # Remembered choices, written by a /prespawn.
    RememberedChoices.objects.create(username="alice", server_name="", choices={"hdfs": "team-a:two"})
    remembered = _json(_post()[1])
    assert remembered["selected"]["hdfs"] == "team-a:two"
    assert _json(base)["selected"]["hdfs"] != "team-a:two"

    # An operator's change to the inventory.
    HdfsInstance.objects.filter(key="team-a:two").update(display_name="Lake")  # no signal: the sync's way
    instance = HdfsInstance.objects.get(key="team-a:one")
    instance.hidden = True
    instance.save()
    assert [i["id"] for i in _json(_post()[1])["hdfs"]] == ["team-a:two"]

    # The sync's freshness: a completed round, and later one gone stale.
    started = timezone.now() - timedelta(hours=3)
    SyncRound.objects.create(
        kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, started_at=started, finished_at=started
    )
    stale = _json(_post()[1])["inventory"]
    assert stale["last_synced_at"] is not None and stale["stale"] is True
    SyncRound.objects.create(kind=SyncRound.Kind.FULL, status=SyncRound.Status.COMPLETED, finished_at=timezone.now())
    assert _json(_post()[1])["inventory"]["stale"] is False


@pytest.mark.django_db
def test_an_access_rule_change_shows_in_the_next_reply(inventory) -> None:
    assert [i["id"] for i in _json(_post()[1])["hdfs"]] == ["team-a:one", "team-a:two"]
    # Once a rule names an instance, only its users and groups may use it.
    make_rule("two-for-others", hdfs_instances=[HdfsInstance.objects.get(key="team-a:two")], groups=["other"])
    kept = _post()[1]
    assert [i["id"] for i in _json(kept)["hdfs"]] == ["team-a:one"]
    assert kept == _fresh()


@pytest.mark.django_db
def test_gzip_when_the_client_accepts_it(inventory) -> None:
    _, plain, response = _post()
    assert "Content-Encoding" not in response
    _, packed, response = _post(HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert response["Content-Encoding"] == "gzip"
    assert response["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed) == plain
    assert len(packed) < len(plain) / 3


def test_the_cache_keeps_at_most_its_bytes_and_drops_the_least_recently_used() -> None:
    bodies = {name: os.urandom(100) for name in "abc"}  # incompressible: each entry a little over 100 bytes
    size = CachedReply(bodies["a"]).size
    cache = ReplyCache(max_bytes=2 * size + size // 2)
    cache.put("a", bodies["a"])
    cache.put("b", bodies["b"])
    assert cache.get("a") is not None  # now b is the least recently used
    cache.put("c", bodies["c"])
    assert cache.get("b") is None
    kept = cache.get("a")
    assert kept is not None and kept.body == bodies["a"]
    assert gzip.decompress(kept.gzipped) == bodies["a"]
    assert cache.size == 2 * size and len(cache) == 2
    big = os.urandom(3 * size)
    assert cache.put("big", big).body == big
    assert cache.get("big") is None


@pytest.mark.django_db(transaction=True)
def test_the_form_comes_from_the_previous_snapshot_while_the_current_one_is_built(inventory, settings) -> None:
    settings.OPTIONS_PREVIOUS_WHILE_REBUILDING = True
    snapshot.forget_snapshot()
    assert [i["id"] for i in _json(_post()[1])["hdfs"]] == ["team-a:one", "team-a:two"]
    make_hdfs("team-a", "three")

    # The first request after the change does not wait for the rebuild: no inventory reads of its own.
    queries, content, _ = _post()
    assert queries == 1
    assert [i["id"] for i in _json(content)["hdfs"]] == ["team-a:one", "team-a:two"]
    snapshot.wait_for_rebuild()
    assert [i["id"] for i in _json(_post()[1])["hdfs"]] == ["team-a:one", "team-a:three", "team-a:two"]


@pytest.mark.django_db(transaction=True)
def test_validation_never_uses_the_previous_snapshot(inventory, settings) -> None:
    settings.OPTIONS_PREVIOUS_WHILE_REBUILDING = True
    snapshot.forget_snapshot()
    _post()
    instance = HdfsInstance.objects.get(key="team-a:two")
    instance.hidden = True
    instance.save()
    assert snapshot.current_snapshot().generation == selectors.request_state(username="", server_name="").generation
    snapshot.wait_for_rebuild()


@pytest.mark.django_db
def test_warm_up_leaves_a_current_snapshot_and_keeps_no_reply(inventory) -> None:
    snapshot.forget_snapshot()
    selectors.forget_replies()
    selectors.warm_up()
    assert len(selectors._REPLIES) == 0
    with CaptureQueriesContext(connection) as captured:
        response = hub_client().post("/options", BODY, format="json")
    assert response.status_code == 200
    # The snapshot was there already: the state query, nothing of the inventory.
    assert len(captured.captured_queries) == 1


@pytest.mark.django_db
def test_a_kept_reply_lives_as_long_as_the_capacity_it_shows(inventory) -> None:
    from inventory.models import ClusterNode, MachineType
    from spawning.offers.machine_type import forget_node_capacities

    MachineType.objects.create(slug="cpu", display_name="CPU", node_selector={"pool": "cpu"})
    node = ClusterNode.objects.create(
        name="cpu-1", ready=True, labels={"pool": "cpu"}, allocatable={"cpu": 8000, "memory": 32 * 2**30, "pods": 110}
    )
    forget_node_capacities()
    before = _json(_post()[1])["machine_types"][0]
    assert before["nodes"] == 1
    # A node going is capacity, not inventory: the generation stays, the key's capacity read does not.
    node.ready = False
    node.save()
    forget_node_capacities()  # as two seconds passing would
    after = _json(_post()[1])["machine_types"][0]
    assert after["nodes"] == 0
    assert _post()[1] == _fresh()
