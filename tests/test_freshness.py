"""One freshness rule for the inventory, read the same by the spawn form, the admin and the probes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from inventory.freshness import as_aware, freshness_from, inventory_freshness
from inventory.models import SyncRound
from inventory.templatetags.inventory_admin import freshness_banner
from optionsportal.health import sync_freshness
from spawning import selectors

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_never_synced_is_stale() -> None:
    fresh = freshness_from(None, None, now=NOW, stale_after=MINUTE)
    assert fresh.last_synced_at is None and fresh.age is None
    assert fresh.too_old and fresh.stale and not fresh.latest_full_failed


def test_a_recent_completed_round_is_fresh_and_an_old_one_stale() -> None:
    recent = freshness_from(NOW - timedelta(seconds=59), SyncRound.Status.COMPLETED, now=NOW, stale_after=MINUTE)
    assert recent.age == timedelta(seconds=59)
    assert not recent.stale
    old = freshness_from(NOW - timedelta(seconds=61), SyncRound.Status.COMPLETED, now=NOW, stale_after=MINUTE)
    assert old.too_old and old.stale and not old.latest_full_failed


def test_a_failed_latest_full_round_is_stale_however_recent_the_last_completed_one() -> None:
    fresh = freshness_from(NOW, SyncRound.Status.FAILED, "connection refused", now=NOW, stale_after=MINUTE)
    assert not fresh.too_old
    assert fresh.stale and fresh.latest_full_failed
    assert fresh.latest_full_error == "connection refused"
    # The error of a round that did not fail is no reason to distrust the inventory.
    assert freshness_from(NOW, SyncRound.Status.COMPLETED, "old news", now=NOW).latest_full_error == ""


def test_the_default_threshold_is_several_missed_rounds_and_at_least_a_minute(settings) -> None:
    settings.SYNC_INTERVAL = 300
    assert freshness_from(NOW, None, now=NOW).stale_after == timedelta(seconds=900)
    settings.SYNC_INTERVAL = 5
    assert freshness_from(NOW, None, now=NOW).stale_after == timedelta(seconds=60)


def test_raw_sql_datetimes_become_aware() -> None:
    # What SQLite hands back for a datetime read by raw SQL: the stored UTC text, or a naive datetime.
    assert as_aware("2024-05-01 12:00:00.250000") == NOW + timedelta(milliseconds=250)
    assert as_aware(datetime(2024, 5, 1, 12, 0)) == NOW
    assert as_aware(NOW) is NOW
    assert as_aware(None) is None


def _round(kind: str, status: str, *, at: datetime, error: str = "") -> SyncRound:
    finished = None if status == SyncRound.Status.RUNNING else at
    return SyncRound.objects.create(kind=kind, status=status, started_at=at, finished_at=finished, error=error)


def _every_reader() -> dict[str, object]:
    """What each reader of freshness says, by the default threshold (the probe's made the same)."""
    state = selectors.request_state(username="alice", server_name="")
    probe_fresh, _ = sync_freshness()
    return {
        "rule": inventory_freshness().stale,
        "options (ORM)": selectors.inventory_freshness()["stale"],
        "options (SQL)": state.freshness["stale"],
        "admin": freshness_banner().stale,
        "probe": not probe_fresh,
    }


@pytest.mark.django_db
def test_every_reader_applies_the_same_rule(settings) -> None:
    settings.SYNC_INTERVAL = 60
    settings.SYNC_MAX_AGE_SECONDS = 180  # the same threshold as 3 x SYNC_INTERVAL
    now = timezone.now()
    full, watch = SyncRound.Kind.FULL, SyncRound.Kind.WATCH
    completed, failed, running = SyncRound.Status.COMPLETED, SyncRound.Status.FAILED, SyncRound.Status.RUNNING

    assert set(_every_reader().values()) == {True}, "never synced"

    _round(full, failed, at=now - timedelta(seconds=50), error="refused")
    assert set(_every_reader().values()) == {True}, "the first round failed"
    assert inventory_freshness().latest_full_error == "refused"

    _round(full, completed, at=now - timedelta(seconds=40))
    assert set(_every_reader().values()) == {False}, "a recent completed full round"

    _round(full, failed, at=now - timedelta(seconds=30), error="refused again")
    _round(watch, completed, at=now - timedelta(seconds=20))
    assert set(_every_reader().values()) == {True}, "the latest full round failed, a watch batch since"

    _round(full, running, at=now - timedelta(seconds=10))
    assert set(_every_reader().values()) == {True}, "a running round says nothing yet"

    SyncRound.objects.filter(status=running).update(status=completed, finished_at=now)
    assert set(_every_reader().values()) == {False}, "the running round completed"

    SyncRound.objects.all().update(started_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=2))
    assert set(_every_reader().values()) == {True}, "too long ago"


@pytest.mark.django_db
def test_the_reply_carries_the_rounds_own_finish_time() -> None:
    finished = timezone.now() - timedelta(seconds=5)
    SyncRound.objects.create(status=SyncRound.Status.COMPLETED, started_at=finished, finished_at=finished)
    state = selectors.request_state(username="alice", server_name="")
    assert state.freshness == {"last_synced_at": finished.isoformat(), "stale": False}
    assert selectors.inventory_freshness() == state.freshness


@pytest.mark.django_db
def test_the_probe_says_why_it_is_not_ready(settings) -> None:
    settings.SYNC_MAX_AGE_SECONDS = 600
    now = timezone.now()
    _round(SyncRound.Kind.FULL, SyncRound.Status.COMPLETED, at=now - timedelta(seconds=30))
    ready, detail = sync_freshness()
    assert ready
    assert re.fullmatch(r"last completed round finished 3[0-5]s ago", detail), detail
    _round(SyncRound.Kind.FULL, SyncRound.Status.FAILED, at=now - timedelta(seconds=10), error="apiserver down")
    ready, detail = sync_freshness()
    assert not ready
    assert detail.endswith("and the latest full round failed: apiserver down")
