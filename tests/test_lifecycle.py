"""The lifecycle of profiles, machine types and images: deprecated with a message, retired with a successor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import TRACKED_MODELS, ChangeEntry
from dashboard.selectors import dashboard_get
from inventory.lifecycle import ImageRules, Lifecycle, image_matches
from inventory.models import ImageLifecycle, MachineType, NotebookPod, Profile
from spawning import lifecycle
from spawning.models import RememberedChoices, SpawnRecord
from tests.dashboard_html import tables
from tests.hubapi import TOKEN, hub_client, make_profile, make_rule, offer_namespace, prespawn_body

pytestmark = pytest.mark.django_db

RETIRED = Lifecycle.RETIRED
DEPRECATED = Lifecycle.DEPRECATED


@pytest.fixture(autouse=True)
def hub_token(settings) -> None:
    settings.OPTIONS_PORTAL_HUB_TOKEN = TOKEN


@pytest.fixture
def no_cluster(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.KUBECONFIG = None
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.fixture
def hub():
    return hub_client()


@pytest.fixture
def admin_client(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create(username="operator", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _options(hub, username: str = "alice", **extra: Any) -> dict[str, Any]:
    body = {"username": username, "server_name": "", "default_namespace": "", **extra}
    response = hub.post("/options", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _retire(profile: Profile, successor: Profile, message: str = "") -> None:
    profile.lifecycle = RETIRED
    profile.successor = successor
    profile.lifecycle_message = message
    profile.full_clean()
    profile.save()


def _errors(row: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        row.full_clean()
    return raised.value.message_dict


# --- The rule, on the models (what the admin refuses) ---


def test_a_retired_profile_needs_a_successor_and_its_chain_may_not_loop() -> None:
    old, new = make_profile("old"), make_profile("new")
    old.lifecycle = RETIRED
    assert "A retired profile needs a successor" in _errors(old)["successor"][0]
    old.successor = old
    assert "cannot be its own successor" in _errors(old)["successor"][0]

    _retire(old, new)
    # new → old would close the loop: both retired, nowhere to move to.
    new.lifecycle, new.successor = RETIRED, old
    assert "loops back" in _errors(new)["successor"][0]
    # A chain through retired rows is fine while it ends at one that is not.
    newest = make_profile("newest")
    new.successor = newest
    new.full_clean()


def test_a_successor_chain_must_end_at_an_enabled_profile() -> None:
    old, off = make_profile("old"), make_profile("off", enabled=False)
    old.lifecycle, old.successor = RETIRED, off
    assert "is disabled" in _errors(old)["successor"][0]


def test_a_deprecated_profile_needs_no_successor() -> None:
    profile = make_profile("old", lifecycle=DEPRECATED, lifecycle_message="Moves to Python 3.12 in March.")
    profile.full_clean()


def test_machine_types_follow_the_same_rule() -> None:
    small = MachineType.objects.create(slug="small", display_name="Small")
    big = MachineType.objects.create(slug="big", display_name="Big")
    small.lifecycle = RETIRED
    assert "A retired machine type needs a successor" in _errors(small)["successor"][0]
    small.successor = big
    small.full_clean()
    small.save()
    big.lifecycle, big.successor = RETIRED, small
    assert "loops back" in _errors(big)["successor"][0]


def test_machine_type_retired_choices_for_its_kind() -> None:
    # What the machine-type kind keeps in its load: one call, as spawning/lifecycle.py documents.
    a = MachineType.objects.create(slug="a", display_name="A")
    b = MachineType.objects.create(slug="b", display_name="B", lifecycle=RETIRED, successor=a)
    MachineType.objects.create(slug="c", display_name="C", lifecycle=RETIRED, successor=b)
    rows = list(MachineType.objects.all())
    retired = lifecycle.retired_choices(rows, what="machine type", key=lambda m: m.slug, label=lambda m: m.display_name)
    assert {slug: moved.new for slug, moved in retired.items()} == {"b": "a", "c": "a"}
    assert [row.slug for row in rows if lifecycle.offered(row)] == ["a"]
    assert lifecycle.retired_refusal(retired["c"]) == "The machine type 'c' is retired; use 'a' instead."


def test_image_entries_need_a_successor_when_retired_and_may_not_loop() -> None:
    entry = ImageLifecycle(pattern="lab:2023-*", lifecycle=RETIRED)
    assert "needs a successor" in _errors(entry)["successor_image"][0]
    entry.successor_image = "lab:*"
    assert "without *" in _errors(entry)["successor_image"][0]
    # The successor matches the pattern being retired: it would replace itself.
    entry.successor_image = "lab:2023-12"
    assert "loop" in _errors(entry)["successor_image"][0]
    entry.successor_image = "lab:2024-01"
    entry.full_clean()
    entry.save()
    # Retiring the successor back onto the first: a loop across two entries.
    back = ImageLifecycle(pattern="lab:2024-01", lifecycle=RETIRED, successor_image="lab:2023-06")
    assert "loop" in _errors(back)["successor_image"][0]
    ImageLifecycle(pattern="lab:2024-01", lifecycle=DEPRECATED).full_clean()


def test_the_most_specific_image_entry_decides() -> None:
    rules = ImageRules.of(
        [
            ImageLifecycle(pattern="lab:*", lifecycle=DEPRECATED, message="all of lab", successor_image=""),
            ImageLifecycle(pattern="lab:2023-*", lifecycle=RETIRED, message="", successor_image="lab:2024-01"),
            ImageLifecycle(pattern="lab:2023-12", lifecycle=Lifecycle.ACTIVE, message="", successor_image=""),
        ]
    )
    assert rules.state("lab:2023-05").retired
    assert rules.state("lab:2023-05").successor == "lab:2024-01"
    assert rules.state("lab:2023-12").lifecycle == Lifecycle.ACTIVE
    assert rules.state("lab:2025-01").deprecated
    assert rules.state("other:1").lifecycle == Lifecycle.ACTIVE
    assert image_matches("registry.example.org/team/lab:*", "registry.example.org/team/lab:1.2")
    assert not image_matches("lab:1.*", "lab:1x2")  # the dot is literal


# --- The admin refuses what the rule refuses ---


def _profile_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "display_name": "Old",
        "slug": "old",
        "description": "",
        "image": "nb:1",
        "enabled": "on",
        "order": "0",
        "lifecycle": "active",
        "lifecycle_message": "",
        "successor": "",
        "spark_image": "",
        "spark_ingress_host": "",
        "spark_ingress_path": "",
        "kubespawner_override": "{}",
        "AccessRule_profiles-TOTAL_FORMS": "0",
        "AccessRule_profiles-INITIAL_FORMS": "0",
    }
    form.update(overrides)
    return form


def test_the_admin_refuses_a_retired_profile_without_a_successor_or_with_a_loop(admin_client: Client) -> None:
    old = make_profile("old", display_name="Old", image="nb:1")
    new = make_profile("new", display_name="New")
    change = reverse("admin:inventory_profile_change", args=[old.pk])

    response = admin_client.post(change, _profile_form(lifecycle="retired"))
    assert response.status_code == 200
    assert "A retired profile needs a successor" in response.content.decode()

    response = admin_client.post(change, _profile_form(lifecycle="retired", successor=str(new.pk)))
    assert response.status_code == 302
    old.refresh_from_db()
    assert (old.lifecycle, old.successor) == (RETIRED, new)

    new_form = _profile_form(display_name="New", slug="new", image="example.org/new:1")
    response = admin_client.post(
        reverse("admin:inventory_profile_change", args=[new.pk]),
        {**new_form, "lifecycle": "retired", "successor": str(old.pk)},
    )
    assert response.status_code == 200
    assert "loops back" in response.content.decode()
    new.refresh_from_db()
    assert new.lifecycle == Lifecycle.ACTIVE


def test_the_admin_refuses_a_retired_image_without_a_successor(admin_client: Client) -> None:
    add = reverse("admin:inventory_imagelifecycle_add")
    response = admin_client.post(
        add, {"pattern": "lab:1", "lifecycle": "retired", "message": "", "successor_image": ""}
    )
    assert response.status_code == 200
    assert "A retired image needs a successor" in response.content.decode()
    response = admin_client.post(
        add, {"pattern": "lab:1", "lifecycle": "retired", "message": "", "successor_image": "lab:2"}
    )
    assert response.status_code == 302
    make_profile("lab", display_name="Lab", image="lab:1")
    listing = admin_client.get(reverse("admin:inventory_imagelifecycle_changelist")).content.decode()
    assert "Lab" in listing


# --- The form and /prespawn ---


def test_a_deprecated_profile_is_offered_with_its_message() -> None:
    make_profile("old", default=True, lifecycle=DEPRECATED, lifecycle_message="Use Python 3.12 by March.")
    make_profile("plain")
    data = _options(hub_client())
    by_slug = {p["slug"]: p for p in data["profiles"]}
    assert by_slug["old"]["notice"] == "Deprecated: Use Python 3.12 by March."
    # An active profile's item is as it always was: no lifecycle key at all.
    assert "notice" not in by_slug["plain"]
    assert "Deprecated: Use Python 3.12 by March." in data["html"]
    assert "notices" not in data


def test_a_retired_profile_is_not_offered_and_a_remembered_choice_moves_to_its_successor(hub) -> None:
    old = make_profile("old", display_name="Python 3.9")
    mid = make_profile("mid", display_name="Python 3.11")
    new = make_profile("new", display_name="Python 3.12")
    make_profile("plain", default=True)
    RememberedChoices.objects.create(username="alice", server_name="", choices={"profile": "old"})
    _retire(mid, new)
    _retire(old, mid, message="3.9 is out of support.")

    data = _options(hub)
    assert [p["slug"] for p in data["profiles"]] == ["plain", "new"]
    # Down the chain to the first one not retired.
    assert data["selected"]["profile"] == "new"
    assert data["notices"] == [
        {
            "field": "profile",
            "old": "old",
            "new": "new",
            "message": "The profile 'Python 3.9' you chose last time is retired; 'Python 3.12' is chosen instead. "
            "3.9 is out of support.",
        }
    ]
    html = data["html"]
    assert "The profile &#x27;Python 3.9&#x27; you chose last time is retired" in html
    assert 'value="new" required checked' in html
    # Another user with no remembered choice gets the default and no notice.
    other = _options(hub, username="bob")
    assert other["selected"]["profile"] == "plain"
    assert "notices" not in other


def test_a_successor_the_user_may_not_use_falls_back_to_the_default(hub) -> None:
    old, new = make_profile("old"), make_profile("new")
    make_profile("plain", default=True)
    make_rule("staff", users=["bob"], profiles=[new])
    _retire(old, new)
    RememberedChoices.objects.create(username="alice", server_name="", choices={"profile": "old"})
    data = _options(hub)
    assert data["selected"]["profile"] == "plain"
    assert "notices" not in data


def test_prespawn_of_a_retired_profile_is_a_400_naming_the_successor(hub, no_cluster: None) -> None:
    offer_namespace("team-a")
    old, new = make_profile("old"), make_profile("new")
    _retire(old, new)
    body = {**prespawn_body(profile="old", namespace="team-a"), "dry_run": True}
    response = hub.post("/prespawn", body, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["profile"] == ["The profile 'old' is retired; use 'new' instead."]
    response = hub.post("/prespawn", {**body, "dry_run": False}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["profile"] == ["The profile 'old' is retired; use 'new' instead."]
    record = SpawnRecord.objects.get()
    assert record.result == SpawnRecord.Result.REFUSED
    # The successor itself is accepted.
    answer = hub.post("/prespawn", {**prespawn_body(profile="new", namespace="team-a"), "dry_run": True}, format="json")
    assert answer.status_code == 200, answer.content


def test_a_deprecated_image_shows_its_message_and_a_retired_one_starts_its_successor(hub, no_cluster: None) -> None:
    offer_namespace("team-a")
    make_profile("lab", display_name="Lab", image="lab:2023-05", default=True)
    make_profile("py", display_name="Py", image="py:3.10")
    ImageLifecycle.objects.create(pattern="lab:2023-*", lifecycle=RETIRED, successor_image="lab:2024-01")
    ImageLifecycle.objects.create(pattern="py:3.10", lifecycle=DEPRECATED, message="Python 3.10 goes in June.")

    by_slug = {p["slug"]: p for p in _options(hub)["profiles"]}
    assert by_slug["lab"]["image"] == "lab:2024-01"
    assert by_slug["lab"]["notice"] == "Image lab:2023-05 is retired; notebooks start lab:2024-01 instead."
    assert by_slug["py"]["image"] == "py:3.10"
    assert by_slug["py"]["notice"] == "Image py:3.10 is deprecated: Python 3.10 goes in June."

    body = {**prespawn_body(profile="lab", namespace="team-a"), "dry_run": True, "reply_version": 2}
    answer = hub.post("/prespawn", body, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["image"] == "lab:2024-01"


# --- History ---


def test_lifecycle_changes_are_in_the_history(admin_client: Client) -> None:
    assert ImageLifecycle in TRACKED_MODELS
    old = make_profile("old", display_name="Old", image="nb:1")
    new = make_profile("new", display_name="New")
    response = admin_client.post(
        reverse("admin:inventory_profile_change", args=[old.pk]),
        _profile_form(lifecycle="retired", successor=str(new.pk), lifecycle_message="Gone in May."),
    )
    assert response.status_code == 302
    entry = ChangeEntry.objects.filter(object_id=str(old.pk), action=ChangeEntry.Action.CHANGED).get()
    assert set(entry.changed_fields) >= {"lifecycle", "lifecycle_message", "successor"}
    assert entry.username == "operator"

    admin_client.post(
        reverse("admin:inventory_imagelifecycle_add"),
        {"pattern": "lab:1", "lifecycle": "deprecated", "message": "old", "successor_image": ""},
    )
    assert ChangeEntry.objects.filter(object_repr="lab:1", action=ChangeEntry.Action.CREATED).exists()


# --- The dashboard and /metrics ---


def _pod(name: str, *, user: str, image: str, server: str = "") -> NotebookPod:
    return NotebookPod.objects.create(
        ref=f"team-a:{name}",
        namespace="team-a",
        name=name,
        username=user,
        server_name=server,
        image=image,
        node_name="node-1",
        phase="Running",
        started_at=timezone.now() - timedelta(hours=2),
    )


def test_the_dashboard_lists_who_runs_deprecated_or_retired_images(admin_client: Client, client: Client) -> None:
    ImageLifecycle.objects.create(pattern="lab:2023-*", lifecycle=RETIRED, successor_image="lab:2024-01")
    ImageLifecycle.objects.create(pattern="py:3.10", lifecycle=DEPRECATED, message="June")
    _pod("jupyter-al", user="al", image="lab:2023-05", server="gpu")
    _pod("jupyter-bo", user="bo", image="py:3.10")
    _pod("jupyter-cy", user="cy", image="lab:2024-01")

    board = dashboard_get()
    listed = [(n.username, n.server_name, n.image, n.state, n.successor) for n in board.on_old_images]
    assert listed == [("al", "gpu", "lab:2023-05", "retired", "lab:2024-01"), ("bo", "", "py:3.10", "deprecated", "")]

    rows = tables(admin_client.get(reverse("admin:index")).content.decode())["dash-old-images-table"]
    since = timezone.localtime(board.on_old_images[0].started_at).strftime("%Y-%m-%d %H:%M")
    assert rows == [
        ["al", "gpu", "lab:2023-05", "node-1", since, "retired", "lab:2024-01"],
        ["bo", "(default)", "py:3.10", "node-1", since, "deprecated", "—"],
    ]

    metrics = client.get("/metrics").content.decode()
    assert 'optionsportal_notebooks_on_old_images{image="lab:2023-05",state="retired",successor="lab:2024-01"} 1.0' in (
        metrics
    )
    assert 'optionsportal_notebooks_on_old_images{image="py:3.10",state="deprecated",successor=""} 1.0' in metrics
    assert 'image="lab:2024-01",state=' not in metrics
