"""Access rules by user and group: what each user is offered by /options and allowed by /prespawn."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from inventory.models import Namespace, NamespaceOption
from spawning.access import dns_safe_name, effective_bounds, namespace_for_pattern, preset_list, user_access
from spawning.errors import ChoiceRefused
from spawning.selectors import options_data
from spawning.services import prespawn_validate
from tests.hubapi import (
    make_graph,
    make_hdfs,
    make_preset,
    make_profile,
    make_rule,
    make_service_account,
    make_volume,
    offer_namespace,
)

pytestmark = pytest.mark.django_db


def _options(username: str = "alice", groups: list[str] | None = None, default_namespace: str = "") -> dict:
    return options_data(username=username, server_name="", groups=groups or [], default_namespace=default_namespace)


def _validate(username: str = "alice", groups: list[str] | None = None, profile: str = "plain", **options: str):
    return prespawn_validate(
        username=username,
        server_name="",
        pod_name=f"jupyter-{username}",
        default_namespace="team-a",
        profile=profile,
        user_options=options,
        groups=groups or [],
    )


def _refused(field: str, **kwargs) -> str:
    with pytest.raises(ChoiceRefused) as caught:
        _validate(**kwargs)
    assert caught.value.field == field
    return caught.value.reason


@pytest.fixture
def team_a() -> str:
    make_profile("plain", default=True)
    make_profile("full", enable_hdfs=True, enable_gaffer=True, enable_spark=True)
    offer_namespace("team-a")
    return "team-a"


def test_unnamed_items_are_open_to_everyone(team_a) -> None:
    make_hdfs(team_a, "lake")
    data = _options("anyone")
    assert [h["id"] for h in data["hdfs"]] == ["team-a:lake"]
    assert _validate("anyone", profile="full", hdfs="team-a:lake").hdfs.url.startswith("hdfs://lake-namenodes")


def test_a_named_item_is_only_for_the_rules_naming_it(team_a) -> None:
    lake = make_hdfs(team_a, "lake")
    make_rule("scientists", groups=["science"], hdfs_instances=[lake])
    make_rule("carol", users=["carol"], hdfs_instances=[lake])
    assert _options("alice")["hdfs"] == []
    assert [h["id"] for h in _options("alice", ["science"])["hdfs"]] == ["team-a:lake"]
    assert [h["id"] for h in _options("carol")["hdfs"]] == ["team-a:lake"]
    assert "may not use" in _refused("hdfs", profile="full", hdfs="team-a:lake")
    assert _validate(groups=["science"], profile="full", hdfs="team-a:lake").hdfs.id == "team-a:lake"


def test_a_rule_for_everyone_opens_a_named_item(team_a) -> None:
    lake = make_hdfs(team_a, "lake")
    make_rule("scientists", groups=["science"], hdfs_instances=[lake])
    make_rule("all", everyone=True, hdfs_instances=[lake])
    assert [h["id"] for h in _options("alice")["hdfs"]] == ["team-a:lake"]


def test_a_graph_in_a_rule_for_another_group_is_neither_offered_nor_accepted(team_a) -> None:
    roads = make_graph(team_a, "roads")
    make_graph(team_a, "open")
    make_rule("traffic", groups=["traffic"], gaffer_graphs=[roads])
    assert [g["id"] for g in _options(groups=["science"])["gaffer_graphs"]] == ["team-a:open"]
    assert "may not use" in _refused("gaffer_graph", groups=["science"], profile="full", gaffer_graph="team-a:roads")
    plan = _validate(groups=["traffic"], profile="full", gaffer_graph="team-a:roads")
    assert plan.gaffer is not None
    assert (plan.gaffer.instance, plan.gaffer.store_secret) == ("roads", "roads-store-properties")


def test_hidden_and_missing_instances_are_neither_offered_nor_accepted(team_a) -> None:
    make_hdfs(team_a, "hidden", hidden=True)
    make_hdfs(team_a, "gone", missing_since=timezone.now())
    make_graph(team_a, "hidden-graph", hidden=True)
    make_graph(team_a, "unavailable", store_secret="")
    data = _options()
    assert data["hdfs"] == []
    assert data["gaffer_graphs"] == []
    assert "no HDFS instance" in _refused("hdfs", profile="full", hdfs="team-a:hidden")
    assert "no HDFS instance" in _refused("hdfs", profile="full", hdfs="team-a:gone")
    assert "no HDFS instance" in _refused("hdfs", profile="full", hdfs="team-a:never-existed")
    assert "no Gaffer graph" in _refused("gaffer_graph", profile="full", gaffer_graph="team-a:hidden-graph")
    assert "no Gaffer graph" in _refused("gaffer_graph", profile="full", gaffer_graph="team-a:unavailable")


def test_profiles_by_rule_and_disabled_profiles(team_a) -> None:
    secret = make_profile("secret")
    make_profile("off", enabled=False)
    make_rule("insiders", groups=["insiders"], profiles=[secret])
    assert {p["slug"] for p in _options()["profiles"]} == {"plain", "full"}
    assert {p["slug"] for p in _options(groups=["insiders"])["profiles"]} == {"plain", "full", "secret"}
    assert "may not use" in _refused("profile", profile="secret")
    assert "disabled" in _refused("profile", profile="off")
    assert "no profile" in _refused("profile", profile="nope")
    assert _validate(groups=["insiders"], profile="secret").image == "example.org/secret:1"


def test_namespace_options_own_lists_and_rules(team_a) -> None:
    offer_namespace("only-bob", users=["bob"])
    offer_namespace("analysts", groups=["analysts"])
    by_rule = offer_namespace("by-rule", users=["dave"])
    make_rule("ops", groups=["ops"], namespaces=[by_rule])
    assert [n["name"] for n in _options("alice")["namespaces"]] == ["team-a"]
    assert {n["name"] for n in _options("bob")["namespaces"]} == {"team-a", "only-bob"}
    assert {n["name"] for n in _options("alice", ["analysts"])["namespaces"]} == {"team-a", "analysts"}
    # Either the option's own list or a rule naming it grants it.
    assert {n["name"] for n in _options("alice", ["ops"])["namespaces"]} == {"team-a", "by-rule"}
    assert {n["name"] for n in _options("dave")["namespaces"]} == {"team-a", "by-rule"}
    assert "may not use the namespace" in _refused("k8s_namespace", k8s_namespace="only-bob")
    assert _validate("bob", k8s_namespace="only-bob").namespace == "only-bob"


def test_templated_namespaces_use_an_injective_dns_safe_name() -> None:
    assert namespace_for_pattern("user-{username}", username="alice") == "user-alice"
    assert dns_safe_name("alice.smith") != dns_safe_name("alice_smith")
    assert namespace_for_pattern("user-{username}", username="Alice.Smith").startswith("user-alice-smith--")


def test_a_namespace_that_does_not_exist_is_not_offered(team_a) -> None:
    NamespaceOption.objects.create(pattern="planned")
    NamespaceOption.objects.create(pattern="deleted")
    Namespace.objects.create(name="deleted", missing_since=timezone.now())
    assert [n["name"] for n in _options()["namespaces"]] == ["team-a"]
    assert "may not use the namespace" in _refused("k8s_namespace", k8s_namespace="deleted")


def test_service_accounts_obey_observed_users_rules_and_namespace(team_a) -> None:
    offer_namespace("team-b")
    make_service_account(team_a, "open")
    make_service_account(team_a, "bobs", observed_users=["bob"])
    ruled = make_service_account(team_a, "ruled")
    make_service_account("team-b", "elsewhere")
    make_service_account("kube-system", "admin")
    make_rule("admins", groups=["admins"], service_accounts=[ruled])
    ids = {a["id"] for a in _options()["service_accounts"]}
    assert ids == {"team-a:open", "team-b:elsewhere"}
    assert {a["id"] for a in _options("bob", ["admins"])["service_accounts"]} == {
        "team-a:open",
        "team-a:bobs",
        "team-a:ruled",
        "team-b:elsewhere",
    }
    assert "may not use" in _refused("k8s_service_account", k8s_namespace=team_a, k8s_service_account="team-a:bobs")
    assert "may not use" in _refused("k8s_service_account", k8s_namespace=team_a, k8s_service_account="team-a:ruled")
    assert "may not use" in _refused(
        "k8s_service_account", k8s_namespace=team_a, k8s_service_account="kube-system:admin"
    )
    assert "not in the namespace" in _refused(
        "k8s_service_account", k8s_namespace=team_a, k8s_service_account="team-b:elsewhere"
    )
    plan = _validate("bob", k8s_namespace=team_a, k8s_service_account="team-a:bobs")
    assert plan.service_account is not None
    assert (plan.service_account.namespace, plan.service_account.name) == ("team-a", "bobs")


def test_volumes_are_only_the_users_own_in_their_namespaces(team_a) -> None:
    offer_namespace("team-b")
    make_volume(team_a, "alices", owner="alice")
    make_volume(team_a, "bobs", owner="bob")
    make_volume("team-b", "alices-b", owner="alice")
    make_volume("private", "alices-private", owner="alice")
    make_volume(team_a, "Alice-upper", owner="Alice")
    assert {v["id"] for v in _options()["volumes"]} == {"team-a:alices", "team-b:alices-b"}
    assert "may not use" in _refused("volume", k8s_namespace=team_a, volume="team-a:bobs")
    assert "may not use" in _refused("volume", k8s_namespace=team_a, volume="team-a:Alice-upper")
    assert "may not use" in _refused("volume", k8s_namespace=team_a, volume="private:alices-private")
    assert "not in the namespace" in _refused("volume", k8s_namespace=team_a, volume="team-b:alices-b")
    plan = _validate(k8s_namespace=team_a, volume="team-a:alices")
    assert plan.volume.existing_claim == "alices"


def test_iam_override_is_what_options_shows(team_a) -> None:
    make_service_account(
        team_a,
        "reader",
        observed_role_arn="arn:aws:iam::111111111111:role/observed",
        role_arn_override="arn:aws:iam::222222222222:role/team/override-role",
        display_name="Lake reader",
    )
    (account,) = _options()["service_accounts"]
    assert account["label"] == "Lake reader"
    assert account["role_arn"] == "arn:aws:iam::222222222222:role/team/override-role"
    assert account["role_name"] == "override-role"
    assert account["role_console_url"] == "https://console.aws.amazon.com/iam/home#/roles/override-role"
    plan = _validate(k8s_namespace=team_a, k8s_service_account="team-a:reader")
    assert plan.service_account is not None
    assert plan.service_account.role_arn == "arn:aws:iam::222222222222:role/team/override-role"


def test_group_ceiling_is_enforced(team_a) -> None:
    make_preset("small", default=True, cpu=Decimal("0.5"), cpu_max=Decimal("4"))
    make_rule("students", groups=["students"], max_cpu=1)
    assert _options(groups=["students"])["bounds"]["cpu"] == {"min": 0.1, "max": 1.0}
    assert _options()["bounds"]["cpu"] == {"min": 0.1, "max": 4.0}
    assert "outside the allowed range" in _refused("resources_cpu", groups=["students"], resources_cpu="2")
    assert _validate(groups=["students"], resources_cpu="1").cpu == Decimal("1")
    assert _validate(resources_cpu="2").cpu == Decimal("2")


def test_the_most_generous_ceiling_among_matching_rules_wins(team_a) -> None:
    make_rule("students", groups=["students"], max_mem=1024, max_cpu=1)
    make_rule("researchers", groups=["research"], max_mem=8192)
    access = user_access(username="alice", groups=["students", "research"])
    bounds = effective_bounds(access=access, presets=preset_list())
    assert bounds["mem"].max == Decimal(8192)
    assert bounds["cpu"].max == Decimal(1)
    # Rules that set no ceiling leave the presets' (here built-in) bounds.
    assert bounds["disk"].max == Decimal(100)


def test_presets_above_the_users_ceiling_are_not_offered(team_a) -> None:
    make_preset("small", default=True, cpu=Decimal("0.5"))
    make_preset("large", cpu=Decimal("3"))
    make_rule("students", groups=["students"], max_cpu=1)
    assert [p["slug"] for p in _options(groups=["students"])["presets"]] == ["small"]
    assert {p["slug"] for p in _options()["presets"]} == {"small", "large"}
    assert "no preset" in _refused("resource_preset", groups=["students"], resource_preset="large")
    assert _validate(groups=["students"], resource_preset="custom").cpu == Decimal("0.5")
