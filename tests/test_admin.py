"""The operators' admin, through Django's test client: lists, filters, actions, forms and freshness."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    Namespace,
    NamespaceOption,
    NotebookVolume,
    Profile,
    ResourcePreset,
    ServiceAccount,
    Source,
    SparkDefault,
    SyncRound,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, django_user_model: Any) -> Client:
    """A logged-in superuser, without hashing a password for every test."""
    user = django_user_model.objects.create(username="operator", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def url(model: str, view: str, *args: Any) -> str:
    return reverse(f"admin:inventory_{model}_{view}", args=args)


def listed(response: Any) -> list[Any]:
    return list(response.context["cl"].result_list)


@pytest.fixture
def inventory() -> dict[str, Any]:
    now = timezone.now()
    present = HdfsInstance.objects.create(
        key="analytics:hdfs",
        namespace="analytics",
        name="hdfs",
        observed_url="hdfs://hdfs-namenodes.analytics.svc:8020",
        display_name="Analytics HDFS",
        last_seen=now,
    )
    gone = HdfsInstance.objects.create(
        key="old:hdfs", namespace="old", name="hdfs", observed_url="hdfs://x.old.svc:8020", missing_since=now
    )
    manual = HdfsInstance.objects.create(
        key="legacy:hdfs", namespace="legacy", name="hdfs", source=Source.MANUAL, url_override="hdfs://legacy:8020"
    )
    rule = AccessRule.objects.create(name="Analysts", groups=["analysts"])
    rule.hdfs_instances.add(present)
    graph = GafferGraph.objects.create(
        key="analytics:roads",
        namespace="analytics",
        name="roads",
        observed_url="http://roads.analytics.svc/rest",
        store_secret="roads-store",
    )
    account = ServiceAccount.objects.create(
        key="analytics:reader",
        namespace="analytics",
        name="reader",
        observed_role_arn="arn:aws:iam::123456789012:role/team/reader<img src=x onerror=alert(1)>",
        observed_users=["alice"],
    )
    volume = NotebookVolume.objects.create(
        key="user-alice:claim-alice", namespace="user-alice", name="claim-alice", owner_username="alice"
    )
    Namespace.objects.create(name="analytics")
    return {"present": present, "gone": gone, "manual": manual, "graph": graph, "account": account, "volume": volume}


CHANGELISTS = [
    "profile",
    "resourcepreset",
    "namespaceoption",
    "accessrule",
    "sparkdefault",
    "hdfsinstance",
    "gaffergraph",
    "serviceaccount",
    "notebookvolume",
    "namespace",
    "syncround",
]


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_changelist_answers(admin_client: Client, inventory: dict[str, Any], model: str) -> None:
    response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["hdfsinstance", "gaffergraph", "serviceaccount", "notebookvolume"])
def test_discovered_filters_and_search_answer(admin_client: Client, inventory: dict[str, Any], model: str) -> None:
    for query in (
        "presence=present",
        "presence=missing",
        "hidden__exact=1",
        "source__exact=manual",
        "namespace=analytics",
        "q=analytics",
        "o=-1",
    ):
        assert admin_client.get(url(model, "changelist") + "?" + query).status_code == 200, query
    if model != "notebookvolume":
        for query in ("access=restricted", "access=open"):
            assert admin_client.get(url(model, "changelist") + "?" + query).status_code == 200, query


def test_filters_select_what_they_say(admin_client: Client, inventory: dict[str, Any]) -> None:
    changelist = url("hdfsinstance", "changelist")
    assert listed(admin_client.get(changelist + "?presence=missing")) == [inventory["gone"]]
    assert set(listed(admin_client.get(changelist + "?presence=present"))) == {
        inventory["present"],
        inventory["manual"],
    }
    assert listed(admin_client.get(changelist + "?source__exact=manual")) == [inventory["manual"]]
    assert listed(admin_client.get(changelist + "?access=restricted")) == [inventory["present"]]
    assert listed(admin_client.get(changelist + "?namespace=old")) == [inventory["gone"]]
    assert listed(admin_client.get(changelist + "?q=Analytics+HDFS")) == [inventory["present"]]
    assert listed(admin_client.get(changelist + "?q=legacy")) == [inventory["manual"]]
    accounts = url("serviceaccount", "changelist")
    assert listed(admin_client.get(accounts + "?role=annotation")) == [inventory["account"]]
    assert listed(admin_client.get(accounts + "?role=override")) == []


def test_bulk_hide_and_unhide(admin_client: Client, inventory: dict[str, Any]) -> None:
    changelist = url("hdfsinstance", "changelist")
    chosen = [inventory["present"].pk, inventory["gone"].pk]

    response = admin_client.post(
        changelist, {"action": "hide_entries", "_selected_action": chosen, "index": 0}, follow=True
    )

    assert response.status_code == 200
    assert "2 hidden." in response.content.decode()
    assert set(HdfsInstance.objects.filter(hidden=True).values_list("pk", flat=True)) == set(chosen)
    assert listed(admin_client.get(changelist + "?hidden__exact=1")) == sorted(
        HdfsInstance.objects.filter(pk__in=chosen), key=lambda i: i.key
    )

    admin_client.post(changelist, {"action": "unhide_entries", "_selected_action": chosen[:1], "index": 0})
    assert list(HdfsInstance.objects.filter(hidden=True).values_list("pk", flat=True)) == chosen[1:]


def test_hide_works_on_every_discovered_kind(admin_client: Client, inventory: dict[str, Any]) -> None:
    for model, obj in (("gaffergraph", "graph"), ("serviceaccount", "account"), ("notebookvolume", "volume")):
        admin_client.post(
            url(model, "changelist"), {"action": "hide_entries", "_selected_action": [inventory[obj].pk], "index": 0}
        )
        inventory[obj].refresh_from_db()
        assert inventory[obj].hidden, model


def test_observed_fields_cannot_be_changed_through_the_form(admin_client: Client, inventory: dict[str, Any]) -> None:
    instance = inventory["present"]

    response = admin_client.post(
        url("hdfsinstance", "change", instance.pk),
        {
            "hidden": "on",
            "display_name": "Renamed",
            "description": "Operators' words",
            "order": "5",
            "url_override": "",
            # Observed columns smuggled into the POST must be ignored.
            "key": "evil:key",
            "namespace": "evil",
            "name": "evil",
            "observed_url": "hdfs://evil:1",
            "source": "manual",
            "access_rules-TOTAL_FORMS": "0",
            "access_rules-INITIAL_FORMS": "0",
            "AccessRule_hdfs_instances-TOTAL_FORMS": "0",
            "AccessRule_hdfs_instances-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    instance.refresh_from_db()
    assert (instance.hidden, instance.display_name, instance.description, instance.order) == (
        True,
        "Renamed",
        "Operators' words",
        5,
    )
    assert (instance.key, instance.namespace, instance.name, instance.source) == (
        "analytics:hdfs",
        "analytics",
        "hdfs",
        Source.DISCOVERED,
    )
    assert instance.observed_url == "hdfs://hdfs-namenodes.analytics.svc:8020"


def test_an_item_is_restricted_from_its_own_page(admin_client: Client, inventory: dict[str, Any]) -> None:
    rule = AccessRule.objects.create(name="Data science", groups=["data-science"])
    graph = inventory["graph"]
    form = {
        "display_name": "",
        "description": "",
        "order": "0",
        "url_override": "",
        "AccessRule_gaffer_graphs-TOTAL_FORMS": "1",
        "AccessRule_gaffer_graphs-INITIAL_FORMS": "0",
        "AccessRule_gaffer_graphs-0-accessrule": str(rule.pk),
        "AccessRule_gaffer_graphs-0-gaffergraph": str(graph.pk),
    }

    response = admin_client.post(url("gaffergraph", "change", graph.pk), form)

    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(rule.gaffer_graphs.all()) == [graph]
    assert listed(admin_client.get(url("gaffergraph", "changelist") + "?access=restricted")) == [graph]


def test_the_change_form_shows_observed_fields_read_only(admin_client: Client, inventory: dict[str, Any]) -> None:
    response = admin_client.get(url("hdfsinstance", "change", inventory["present"].pk))
    form = response.context["adminform"].form
    assert set(form.fields) == {"hidden", "display_name", "description", "order", "url_override"}
    assert "hdfs://hdfs-namenodes.analytics.svc:8020" in response.content.decode()


def test_discovered_rows_cannot_be_deleted_but_manual_ones_can(admin_client: Client, inventory: dict[str, Any]) -> None:
    assert admin_client.get(url("hdfsinstance", "delete", inventory["present"].pk)).status_code == 403
    assert admin_client.post(url("hdfsinstance", "delete", inventory["present"].pk), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(url("hdfsinstance", "changelist"))
    assert "delete_selected" not in changelist.content.decode()

    response = admin_client.post(url("hdfsinstance", "delete", inventory["manual"].pk), {"post": "yes"})
    assert response.status_code == 302
    assert not HdfsInstance.objects.filter(pk=inventory["manual"].pk).exists()
    assert HdfsInstance.objects.filter(pk=inventory["present"].pk).exists()


def _inline_management(prefix: str) -> dict[str, str]:
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}


def test_operators_add_a_manual_hdfs_instance(admin_client: Client) -> None:
    form = {
        "key": "",
        "namespace": "legacy",
        "name": "hdfs",
        "url_override": "hdfs://legacy-namenode:8020",
        "display_name": "Legacy",
        "order": "0",
        **_inline_management("AccessRule_hdfs_instances"),
    }

    response = admin_client.post(url("hdfsinstance", "add"), form)

    assert response.status_code == 302, response.content.decode()[:3000]
    instance = HdfsInstance.objects.get()
    assert (instance.key, instance.source, instance.url) == (
        "legacy:hdfs",
        Source.MANUAL,
        "hdfs://legacy-namenode:8020",
    )


def test_a_manual_entry_without_a_url_is_refused_in_the_form(admin_client: Client) -> None:
    form = {"key": "", "namespace": "x", "name": "g", "url_override": "", "order": "0"}
    form |= _inline_management("AccessRule_gaffer_graphs")

    response = admin_client.post(url("gaffergraph", "add"), form)

    assert response.status_code == 200
    assert "A manual Gaffer graph needs a REST API URL." in response.content.decode()
    assert not GafferGraph.objects.exists()


def test_only_hdfs_and_graphs_can_be_added_by_hand(admin_client: Client) -> None:
    assert admin_client.get(url("hdfsinstance", "add")).status_code == 200
    assert admin_client.get(url("gaffergraph", "add")).status_code == 200
    for model in ("serviceaccount", "notebookvolume", "namespace", "syncround"):
        assert admin_client.get(url(model, "add")).status_code == 403, model


def test_service_accounts_show_the_iam_role_escaped_with_a_console_link(
    admin_client: Client, inventory: dict[str, Any]
) -> None:
    page = admin_client.get(url("serviceaccount", "changelist")).content.decode()

    escaped = "reader&lt;img src=x onerror=alert(1)&gt;"
    assert f'href="https://console.aws.amazon.com/iam/home#/roles/{escaped}"' in page
    assert f">{escaped}</a>" in page
    assert "<img src=x" not in page


def test_an_iam_role_override_is_editable_and_shown(admin_client: Client, inventory: dict[str, Any]) -> None:
    account = inventory["account"]
    response = admin_client.post(
        url("serviceaccount", "change", account.pk),
        {
            "display_name": "Analytics reader",
            "description": "",
            "order": "0",
            "role_arn_override": "arn:aws:iam::123456789012:role/analytics-reader",
            **_inline_management("AccessRule_service_accounts"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    account.refresh_from_db()
    assert account.role_name == "analytics-reader"
    assert account.observed_role_arn.endswith("reader<img src=x onerror=alert(1)>")
    page = admin_client.get(url("serviceaccount", "changelist")).content.decode()
    assert 'href="https://console.aws.amazon.com/iam/home#/roles/analytics-reader"' in page


def test_a_bad_iam_role_override_is_refused(admin_client: Client, inventory: dict[str, Any]) -> None:
    response = admin_client.post(
        url("serviceaccount", "change", inventory["account"].pk),
        {"order": "0", "role_arn_override": "reader", **_inline_management("AccessRule_service_accounts")},
    )
    assert response.status_code == 200
    assert "An IAM role ARN starts with arn:" in response.content.decode()


def _profile_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "display_name": "Spark",
        "slug": "spark",
        "description": "",
        "image": "nb:1",
        "enabled": "on",
        "order": "0",
        "spark_image": "",
        "spark_ingress_host": "",
        "spark_ingress_path": "",
        "kubespawner_override": "{}",
        **_inline_management("AccessRule_profiles"),
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_profile_form_shows_the_spark_image_rule(admin_client: Client) -> None:
    response = admin_client.post(url("profile", "add"), _profile_form(enable_spark="on"))
    assert response.status_code == 200
    assert "A profile that enables Spark needs a Spark image." in response.content.decode()
    assert not Profile.objects.exists()

    response = admin_client.post(url("profile", "add"), _profile_form(enable_spark="on", spark_image="spark:3"))
    assert response.status_code == 302
    assert Profile.objects.get().spark_image == "spark:3"


def test_profile_form_refuses_a_second_default_and_bad_overrides(admin_client: Client) -> None:
    Profile.objects.create(slug="python", display_name="Python", image="py:1", default=True)

    response = admin_client.post(url("profile", "add"), _profile_form(default="on"))
    assert "&#x27;Python&#x27; is already the default profile." in response.content.decode()

    response = admin_client.post(url("profile", "add"), _profile_form(kubespawner_override='["x"]'))
    assert "Extra overrides must be a JSON object." in response.content.decode()
    assert Profile.objects.count() == 1


def _preset_form(**overrides: Any) -> dict[str, Any]:
    preset = ResourcePreset()
    form: dict[str, Any] = {"display_name": "Medium", "slug": "medium", "description": "", "order": "0"}
    for field in ResourcePreset.BOUNDED:
        for name in (f"{field}_min", field, f"{field}_max"):
            form[name] = str(getattr(preset, name))
    form.update(overrides)
    return form


def test_preset_form_shows_bound_errors_and_the_one_default_rule(admin_client: Client) -> None:
    response = admin_client.post(url("resourcepreset", "add"), _preset_form(mem_min="4096", mem_max="1024"))
    assert response.status_code == 200
    assert "The minimum (4096) is above the maximum (1024)." in response.content.decode()

    ResourcePreset.objects.create(slug="small", display_name="Small", default=True)
    response = admin_client.post(url("resourcepreset", "add"), _preset_form(default="on"))
    assert "&#x27;Small&#x27; is already the default preset." in response.content.decode()

    response = admin_client.post(url("resourcepreset", "add"), _preset_form(cpu_min="0.5", cpu="1", cpu_max="2"))
    assert response.status_code == 302
    medium = ResourcePreset.objects.get(slug="medium")
    assert (medium.cpu_min, medium.cpu, medium.cpu_max) == (Decimal("0.5"), Decimal("1"), Decimal("2"))


def test_access_rule_users_and_groups_are_typed_as_comma_separated_names(
    admin_client: Client, inventory: dict[str, Any]
) -> None:
    form = {
        "name": "Data science",
        "users": "alice, bob\ncarol, alice",
        "groups": "data-science",
        "hdfs_instances": [inventory["present"].pk],
        "max_cpu": "4",
    }

    response = admin_client.post(url("accessrule", "add"), form)

    assert response.status_code == 302, response.content.decode()[:3000]
    rule = AccessRule.objects.get(name="Data science")
    assert (rule.users, rule.groups, rule.max_cpu) == (["alice", "bob", "carol"], ["data-science"], Decimal("4"))
    assert list(rule.hdfs_instances.all()) == [inventory["present"]]
    page = admin_client.get(url("accessrule", "change", rule.pk)).content.decode()
    assert "alice, bob, carol</textarea>" in page
    assert 'id="id_hdfs_instances_from"' not in page or "SelectFilter" in page  # filter_horizontal widget
    assert "selectfilter" in page.lower()


def test_access_rule_form_refuses_a_rule_for_nobody_and_spaces_in_names(admin_client: Client) -> None:
    response = admin_client.post(url("accessrule", "add"), {"name": "Nobody", "users": "", "groups": ""})
    assert "Name at least one user or group, or tick" in response.content.decode()
    response = admin_client.post(url("accessrule", "add"), {"name": "Typo", "users": "alice bob"})
    assert "&#x27;alice bob&#x27; contains a space" in response.content.decode()
    assert not AccessRule.objects.exists()


def test_access_rule_filters_and_search(admin_client: Client) -> None:
    groups = AccessRule.objects.create(name="Groups", groups=["analysts"])
    users = AccessRule.objects.create(name="Users", users=["alice"])
    everyone = AccessRule.objects.create(name="All", everyone=True)
    changelist = url("accessrule", "changelist")
    assert listed(admin_client.get(changelist + "?applies_to=groups")) == [groups]
    assert listed(admin_client.get(changelist + "?applies_to=users")) == [users]
    assert listed(admin_client.get(changelist + "?applies_to=everyone")) == [everyone]
    assert listed(admin_client.get(changelist + "?q=alice")) == [users]


def test_namespace_option_users_are_comma_separated(admin_client: Client) -> None:
    response = admin_client.post(
        url("namespaceoption", "add"),
        {
            "pattern": "analytics",
            "users": "alice,bob",
            "groups": "",
            "order": "0",
            **_inline_management("AccessRule_namespaces"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert NamespaceOption.objects.get().users == ["alice", "bob"]

    response = admin_client.post(
        url("namespaceoption", "add"),
        {"pattern": "Team_A", "order": "0", **_inline_management("AccessRule_namespaces")},
    )
    assert "A namespace name is lower-case letters" in response.content.decode()


def test_spark_defaults_are_edited_in_the_list(admin_client: Client) -> None:
    first = SparkDefault.objects.create(key="spark.master", value="local", order=1)
    second = SparkDefault.objects.create(key="spark.submit.deployMode", value="client", order=2)

    response = admin_client.post(
        url("sparkdefault", "changelist"),
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": str(first.pk),
            "form-0-value": "k8s://https://kubernetes.default.svc",
            "form-0-order": "1",
            "form-1-id": str(second.pk),
            "form-1-value": "client",
            "form-1-order": "0",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.value == "k8s://https://kubernetes.default.svc"
    assert second.order == 0


def test_sync_rounds_are_read_only(admin_client: Client) -> None:
    round_ = SyncRound.objects.create(
        status=SyncRound.Status.FAILED,
        finished_at=timezone.now(),
        error="listing services: 403 Forbidden",
        details={"hdfs": {"added": 1}},
    )
    page = admin_client.get(url("syncround", "changelist")).content.decode()
    assert "listing services: 403 Forbidden" in page
    assert admin_client.get(url("syncround", "changelist") + "?status__exact=failed").status_code == 200

    view = admin_client.get(url("syncround", "change", round_.pk))
    assert view.status_code == 200
    assert "<li>hdfs: {&quot;added&quot;: 1}</li>" in view.content.decode()
    assert admin_client.post(url("syncround", "change", round_.pk), {"status": "completed"}).status_code == 403
    assert admin_client.post(url("syncround", "delete", round_.pk), {"post": "yes"}).status_code == 403
    round_.refresh_from_db()
    assert round_.status == SyncRound.Status.FAILED


def test_freshness_when_never_synced(admin_client: Client) -> None:
    page = admin_client.get(url("hdfsinstance", "changelist")).content.decode()
    assert "The inventory has never been synced" in page


def test_freshness_of_a_recent_completed_round_on_lists_and_the_index(admin_client: Client) -> None:
    finished = timezone.now() - timedelta(minutes=5)
    SyncRound.objects.create(
        status=SyncRound.Status.COMPLETED, started_at=finished - timedelta(seconds=3), finished_at=finished
    )

    for page_url in (
        url("hdfsinstance", "changelist"),
        reverse("admin:index"),
        reverse("admin:app_list", args=["inventory"]),
    ):
        page = admin_client.get(page_url).content.decode()
        assert '<li class="success">Inventory last synced 5\xa0minutes ago (completed).</li>' in page, page_url


def test_freshness_warns_when_stale_or_failed(admin_client: Client, settings: Any) -> None:
    settings.SYNC_INTERVAL = 60
    finished = timezone.now() - timedelta(hours=2)
    SyncRound.objects.create(status=SyncRound.Status.COMPLETED, started_at=finished, finished_at=finished)

    page = admin_client.get(url("serviceaccount", "changelist")).content.decode()
    assert '<li class="warning">Inventory last synced 2\xa0hours ago (completed). That is stale' in page

    SyncRound.objects.create(status=SyncRound.Status.FAILED, finished_at=timezone.now(), error="apiserver <down>")
    page = admin_client.get(url("serviceaccount", "changelist")).content.decode()
    assert "The latest sync round failed. Error: apiserver &lt;down&gt;" in page
    assert '<li class="error">' in page


def test_non_staff_users_are_sent_to_log_in(client: Client) -> None:
    response = client.get(url("hdfsinstance", "changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
