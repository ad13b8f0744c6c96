"""The history of operator changes: through the real admin, not through the sync, and import_config runs.

Admin changes are posted through Django's test client as a logged-in operator,
with the change form's own data, so the history sees exactly what an operator's
save writes. The sync round runs against the real apiserver.
"""

from __future__ import annotations

import getpass
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst
from kubernetes import client as k8s

from audit.models import ChangeEntry, ImportRun
from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    MachineType,
    NamespaceOption,
    Profile,
    ProfileOption,
    ResourcePreset,
    SparkDefault,
)
from inventory.sync import sync_full_round

pytestmark = pytest.mark.django_db

CONF = Path(__file__).parent / "fixtures" / "original-conf"


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create(username="operator", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client: Client, operator: Any) -> Client:
    client.force_login(operator)
    return client


def change_url(obj: models.Model, view: str = "change") -> str:
    return reverse(f"admin:inventory_{obj._meta.model_name}_{view}", args=[obj.pk])


def form_data(response: Any) -> dict[str, Any]:
    """The POST an unchanged save of this admin change page would send, inlines included."""
    all_forms: list[forms.BaseForm] = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        all_forms.append(inline.formset.management_form)
        all_forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in all_forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field.widget, forms.CheckboxInput):
                if value:
                    data[form.add_prefix(name)] = "on"
                continue
            if value is None:
                continue
            # BoundField.value() is already prepared for the widget.
            data[form.add_prefix(name)] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
    return data


def admin_save(client: Client, obj: models.Model, changes: dict[str, Any]) -> None:
    page = client.get(change_url(obj))
    assert page.status_code == 200
    data = {**form_data(page), **changes}
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(change_url(obj), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response


def entries_for(obj: models.Model) -> list[ChangeEntry]:
    return list(ChangeEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)))


def _profile() -> Profile:
    return Profile.objects.create(slug="minimal", display_name="Minimal", image="jupyter/minimal-notebook:2024")


def _preset() -> ResourcePreset:
    return ResourcePreset.objects.create(slug="small", display_name="Small")


def _namespace_option() -> NamespaceOption:
    return NamespaceOption.objects.create(pattern="analytics", users=["alice"])


def _spark_default() -> SparkDefault:
    return SparkDefault.objects.create(key="spark.executor.instances", value="2")


def _hdfs() -> HdfsInstance:
    return HdfsInstance.objects.create(
        key="analytics:hdfs",
        namespace="analytics",
        name="hdfs",
        observed_url="hdfs://hdfs-namenodes.analytics.svc:8020",
        last_seen=timezone.now(),
    )


def _machine_type() -> MachineType:
    return MachineType.objects.create(
        slug="gpu-small",
        display_name="GPU, small",
        node_selector={"pool": "gpu"},
        extended_resources={"nvidia.com/gpu": [0, 1]},
    )


def _profile_option() -> ProfileOption:
    return ProfileOption.objects.create(
        profile=_profile(),
        slug="image",
        display_name="Image",
        choices=[{"key": "base", "display_name": "Base", "kubespawner_override": {"image": "jupyter/base:1"}}],
    )


def _rule() -> AccessRule:
    return AccessRule.objects.create(name="Analysts", groups=["analysts"])


CASES: list[tuple[str, Callable[[], models.Model], dict[str, Any], dict[str, tuple[str, str]]]] = [
    (
        "profile",
        _profile,
        {"image": "jupyter/minimal-notebook:2025", "enable_hdfs": "on"},
        {"image": ("jupyter/minimal-notebook:2024", "jupyter/minimal-notebook:2025"), "enable_hdfs": ("False", "True")},
    ),
    ("preset", _preset, {"cpu_max": "8", "mem": "1024"}, {"cpu_max": ("4.00", "8.00"), "mem": ("512", "1024")}),
    (
        "namespace option",
        _namespace_option,
        {"users": "alice, bob", "description": "Shared analytics"},
        {"users": ('["alice"]', '["alice", "bob"]'), "description": ("", "Shared analytics")},
    ),
    ("spark default", _spark_default, {"value": "4"}, {"value": ("2", "4")}),
    (
        "HDFS instance",
        _hdfs,
        {"display_name": "Analytics HDFS", "url_override": "hdfs://hdfs.example.org:8020", "hidden": "on"},
        {
            "display_name": ("", "Analytics HDFS"),
            "url_override": ("", "hdfs://hdfs.example.org:8020"),
            "hidden": ("False", "True"),
        },
    ),
    (
        "machine type",
        _machine_type,
        {"display_name": "GPU (T4)", "max_mem": "30720"},
        {"display_name": ("GPU, small", "GPU (T4)"), "max_mem": ("", "30720")},
    ),
    (
        "profile option",
        _profile_option,
        {
            "display_name": "Notebook image",
            "unlisted_enabled": "on",
            "unlisted_kubespawner_override": '{"image": "{value}"}',
        },
        {
            "display_name": ("Image", "Notebook image"),
            "unlisted_enabled": ("False", "True"),
            "unlisted_kubespawner_override": ("{}", '{"image": "{value}"}'),
        },
    ),
    ("access rule", _rule, {"max_cpu": "2", "users": "carol"}, {"max_cpu": ("", "2.00"), "users": ("[]", '["carol"]')}),
]


@pytest.mark.parametrize(("kind", "make", "changes", "expected"), CASES, ids=[case[0] for case in CASES])
def test_an_admin_change_is_recorded_with_user_and_fields(
    admin_client: Client,
    operator: Any,
    kind: str,
    make: Callable[[], models.Model],
    changes: dict[str, Any],
    expected: dict[str, tuple[str, str]],
) -> None:
    obj = make()
    history = type(obj).history  # type: ignore[attr-defined]
    before = history.filter(id=obj.pk).count()

    admin_save(admin_client, obj, changes)

    records = history.filter(id=obj.pk).order_by("-history_id")
    assert records.count() == before + 1
    assert records[0].history_user == operator
    assert records[0].history_type == "~"
    entry = entries_for(obj)[0]
    assert entry.user == operator and entry.username == "operator"
    assert entry.action == ChangeEntry.Action.CHANGED
    got = {c["field"]: (c["old"], c["new"]) for c in entry.changes}
    assert got == expected

    # The object's own History page shows who and the field-level diff.
    page = admin_client.get(change_url(obj, "history"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "operator" in html
    for field, (_old, new) in expected.items():
        label = capfirst(type(obj)._meta.get_field(field).verbose_name)
        assert f"<strong>{label}:</strong>" in html
        # The page writes lists its own way: look for each word of the new value.
        assert all(word in html for word in re.findall(r"[\w.:/-]+", new)), (field, new)

    # The global list shows it, and its filters find it by model, user and date.
    changelist = reverse("admin:audit_changeentry_changelist")
    ct = ContentType.objects.get_for_model(obj)
    today = timezone.now()
    for query in (
        {"model": str(ct.pk)},
        {"user__id__exact": str(operator.pk)},
        {"changed_at__year": str(today.year), "changed_at__month": str(today.month), "changed_at__day": str(today.day)},
    ):
        listed = admin_client.get(changelist, query)
        assert listed.status_code == 200
        assert entry in list(listed.context["cl"].result_list), query
    other = ContentType.objects.get_for_model(GafferGraph)
    assert entry not in list(admin_client.get(changelist, {"model": str(other.pk)}).context["cl"].result_list)


def test_an_access_rule_records_what_it_grants(admin_client: Client, operator: Any) -> None:
    rule = _rule()
    profile = _profile()
    admin_save(admin_client, rule, {"profiles": [str(profile.pk)]})

    grants = [e for e in entries_for(rule) if any(c["field"] == "profiles" for c in e.changes)]
    assert len(grants) == 1
    assert grants[0].changes == [{"field": "profiles", "old": "", "new": "Minimal"}]
    assert grants[0].user == operator


def test_a_save_that_changes_nothing_writes_no_history(admin_client: Client) -> None:
    profile = _profile()
    count = Profile.history.filter(id=profile.pk).count()  # type: ignore[attr-defined]
    admin_save(admin_client, profile, {})
    assert Profile.history.filter(id=profile.pk).count() == count  # type: ignore[attr-defined]
    assert [e.action for e in entries_for(profile)] == [ChangeEntry.Action.CREATED]


def test_the_hide_action_is_recorded(admin_client: Client, operator: Any) -> None:
    shown, already_hidden = _hdfs(), HdfsInstance.objects.create(key="old:hdfs", name="hdfs", hidden=True)
    response = admin_client.post(
        reverse("admin:inventory_hdfsinstance_changelist"),
        {"action": "hide_entries", "_selected_action": [str(shown.pk), str(already_hidden.pk)]},
    )
    assert response.status_code == 302
    entry = entries_for(shown)[0]
    assert entry.changes == [{"field": "hidden", "old": "False", "new": "True"}]
    assert entry.user == operator
    assert entry.reason.startswith("admin action: Hide the selected entries")
    # Unchanged by the action: nothing new recorded.
    assert [e.action for e in entries_for(already_hidden)] == [ChangeEntry.Action.CREATED]


def test_a_past_version_cannot_be_posted_back(admin_client: Client) -> None:
    instance = _hdfs()
    record = HdfsInstance.history.filter(id=instance.pk).get()  # type: ignore[attr-defined]
    url = reverse("admin:inventory_hdfsinstance_simple_history", args=[instance.pk, record.history_id])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"display_name": "x"}).status_code == 405
    instance.refresh_from_db()
    assert instance.display_name == "" and instance.observed_url.startswith("hdfs://")


def test_the_history_leaves_out_observed_columns() -> None:
    fields = {f.name for f in HdfsInstance.history.model._meta.fields}  # type: ignore[attr-defined]
    assert {"hidden", "display_name", "description", "order", "url_override", "static_url"} <= fields
    assert not {"observed_url", "uid", "labels", "annotations", "last_seen", "missing_since"} & fields


@pytest.mark.kube
def test_sync_rounds_write_no_history(
    kube: Any, core_v1: k8s.CoreV1Api, make_namespace: Any, admin_client: Client
) -> None:
    ns = make_namespace()
    service = {
        "metadata": {
            "name": "warehouse-namenode",
            "labels": {
                "app.kubernetes.io/name": "hdfs",
                "app.kubernetes.io/component": "namenode",
                "app.kubernetes.io/instance": "warehouse",
            },
        },
        "spec": {"ports": [{"name": "client-rpc", "port": 8020}]},
    }
    core_v1.create_namespaced_service(ns, service)
    entries_before = ChangeEntry.objects.count()

    sync_full_round()  # creates the row
    instance = HdfsInstance.objects.get(key=f"{ns}:warehouse")
    # A JSON patch (a list): a strategic merge would add a second port keyed by number.
    core_v1.patch_namespaced_service(
        "warehouse-namenode", ns, [{"op": "replace", "path": "/spec/ports/0/port", "value": 9000}]
    )
    sync_full_round()  # changes its observed URL
    instance.refresh_from_db()
    assert instance.observed_url.endswith(":9000")
    core_v1.delete_namespaced_service("warehouse-namenode", ns, _preload_content=False)
    sync_full_round()  # marks it missing
    instance.refresh_from_db()
    assert instance.missing_since is not None

    assert HdfsInstance.history.filter(key=f"{ns}:warehouse").count() == 0  # type: ignore[attr-defined]
    assert ChangeEntry.objects.count() == entries_before

    # An operator's change to the same row is recorded.
    admin_save(admin_client, instance, {"display_name": "Warehouse"})
    assert [c["field"] for c in entries_for(instance)[0].changes] == ["display_name"]


# --- import_config ----------------------------------------------------------------------


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(CONF, target)
    return target


def run_import(*args: str) -> str:
    out = StringIO()
    call_command("import_config", *args, stdout=out)
    return out.getvalue()


def test_an_import_run_is_recorded_with_counts_and_its_changes_carry_the_reason(conf: Path, operator: Any) -> None:
    output = run_import(str(conf), "--user", "operator")

    run = ImportRun.objects.get()
    assert (run.source, run.run_by, run.dry_run, run.helm_values) == (str(conf), "operator", False, False)
    assert run.status == ImportRun.Status.COMPLETED and run.error == ""
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.counts["Profile"] == {"created": 2, "updated": 0, "unchanged": 0, "deleted": 0}
    assert run.created == sum(c["created"] for c in run.counts.values()) > 0
    assert run.created == Profile.objects.count() + HdfsInstance.objects.count() + GafferGraph.objects.count() + (
        NamespaceOption.objects.count() + SparkDefault.objects.count() + AccessRule.objects.count()
    )
    assert f"Total: {run.created} created, 0 updated" in output and run.report in output

    reason = f"import_config {conf}"
    for profile in Profile.objects.all():
        record = Profile.history.filter(id=profile.pk).get()  # type: ignore[attr-defined]
        assert record.history_change_reason == reason
        assert record.history_user == operator
    entries = ChangeEntry.objects.filter(import_run=run)
    assert entries.count() >= run.created
    assert set(entries.values_list("reason", flat=True)) == {reason}

    # Running it again changes nothing, and records a run that says so.
    history_rows = Profile.history.count()  # type: ignore[attr-defined]
    run_import(str(conf))
    again = ImportRun.objects.latest()
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    assert again.run_by == getpass.getuser()
    assert Profile.history.count() == history_rows  # type: ignore[attr-defined]
    assert not ChangeEntry.objects.filter(import_run=again).exists()


def test_an_import_that_updates_records_the_fields(conf: Path) -> None:
    run_import(str(conf))
    text = (conf / "spark-defaults.yaml").read_text()
    key = next(line.split(":", 1)[0].strip().strip("'\"") for line in text.splitlines() if line.strip())
    row = SparkDefault.objects.get(key=key)
    row.value = "changed by hand"
    row.save()

    run_import(str(conf))

    run = ImportRun.objects.latest()
    assert run.counts["Spark default"]["updated"] == 1
    entry = ChangeEntry.objects.get(import_run=run)
    assert entry.object_id == str(row.pk)
    assert [c["field"] for c in entry.changes] == ["value"]
    assert entry.changes[0]["old"] == "changed by hand"
    assert entry.reason == f"import_config {conf}"


def test_a_dry_run_is_recorded_and_leaves_no_history(conf: Path) -> None:
    run_import(str(conf), "--dry-run")
    run = ImportRun.objects.get()
    assert run.dry_run is True and run.status == ImportRun.Status.COMPLETED
    assert run.created > 0
    assert Profile.objects.count() == 0
    assert Profile.history.count() == 0  # type: ignore[attr-defined]
    assert not ChangeEntry.objects.exists()


def test_a_failed_import_is_recorded_with_its_reason(conf: Path) -> None:
    (conf / "hdfs.yaml").write_text("- id: 42\n  users: alice\n")
    with pytest.raises(CommandError):
        run_import(str(conf))
    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED
    assert "hdfs.yaml" in run.error
    assert not ChangeEntry.objects.exists()


def test_a_helm_values_import_names_the_file(tmp_path: Path) -> None:
    values = Path(__file__).parent / "fixtures" / "gaffer-jhub-values.yaml"
    run_import("--helm-values", str(values))
    run = ImportRun.objects.get()
    assert run.helm_values is True and run.source == str(values)
    assert Profile.history.filter(history_change_reason=f"import_config {values}").exists()  # type: ignore[attr-defined]


def test_the_import_runs_are_listed_in_the_admin(admin_client: Client, conf: Path) -> None:
    run_import(str(conf))
    run = ImportRun.objects.get()
    listed = admin_client.get(reverse("admin:audit_importrun_changelist"))
    assert run in list(listed.context["cl"].result_list)
    page = admin_client.get(reverse("admin:audit_importrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert "2 created, 0 updated, 0 unchanged, 0 deleted" in page.content.decode()
    changes = admin_client.get(reverse("admin:audit_changeentry_changelist"), {"import_run__id__exact": run.pk})
    assert changes.status_code == 200
    assert len(list(changes.context["cl"].result_list)) == ChangeEntry.objects.filter(import_run=run).count() > 0


def test_old_history_is_pruned(admin_client: Client) -> None:
    profile = _profile()
    admin_save(admin_client, profile, {"image": "jupyter/minimal-notebook:2025"})
    old = timezone.now() - timedelta(days=400)
    Profile.history.filter(id=profile.pk, history_type="+").update(history_date=old)  # type: ignore[attr-defined]
    ChangeEntry.objects.filter(action="+").update(changed_at=old)

    call_command("prune_history", "--days", "365", stdout=StringIO())

    assert list(Profile.history.filter(id=profile.pk).values_list("history_type", flat=True)) == ["~"]  # type: ignore[attr-defined]
    assert [e.action for e in entries_for(profile)] == ["~"]
