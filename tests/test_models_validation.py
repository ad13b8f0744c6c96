"""The model rules that stop operators from saving something that would break spawns."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inventory.demo import load_demo
from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    NamespaceOption,
    Profile,
    ResourcePreset,
    ServiceAccount,
    Source,
    SparkDefault,
)

pytestmark = pytest.mark.django_db


def errors_of(obj: object) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        obj.full_clean()  # type: ignore[attr-defined]
    return raised.value.message_dict


def test_a_spark_profile_needs_a_spark_image() -> None:
    profile = Profile(slug="spark", display_name="Spark", image="nb:1", enable_spark=True)
    assert errors_of(profile) == {"spark_image": ["A profile that enables Spark needs a Spark image."]}
    profile.spark_image = "spark:3"
    profile.full_clean()


def test_a_spark_ingress_path_is_absolute() -> None:
    profile = Profile(slug="p", display_name="P", image="nb:1", spark_ingress_path="spark/{{USERNAME}}")
    assert errors_of(profile) == {"spark_ingress_path": ["An ingress path starts with /."]}


def test_extra_overrides_are_a_json_object() -> None:
    profile = Profile(slug="p", display_name="P", image="nb:1", kubespawner_override=["image", "x"])
    assert "kubespawner_override" in errors_of(profile)


def test_one_default_profile_and_preset_in_clean_and_in_the_database() -> None:
    Profile.objects.create(slug="a", display_name="A", image="a:1", default=True)
    second = Profile(slug="b", display_name="B", image="b:1", default=True)
    assert errors_of(second) == {"default": ["'A' is already the default profile."]}
    # The partial unique constraint holds even for code that skips full_clean().
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()

    ResourcePreset.objects.create(slug="s", display_name="Small", default=True)
    other = ResourcePreset(slug="m", display_name="Medium", default=True)
    assert errors_of(other) == {"default": ["'Small' is already the default preset."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()


def test_the_default_profile_may_be_saved_again() -> None:
    profile = Profile.objects.create(slug="a", display_name="A", image="a:1", default=True)
    profile.description = "changed"
    profile.full_clean()


@pytest.mark.parametrize("field", ResourcePreset.BOUNDED)
def test_a_preset_minimum_above_its_maximum_is_refused(field: str) -> None:
    preset = ResourcePreset(slug="p", display_name="P")
    low = getattr(preset, f"{field}_max") + 1
    setattr(preset, f"{field}_min", low)
    errors = errors_of(preset)
    assert errors == {
        f"{field}_min": [f"The minimum ({low}) is above the maximum ({getattr(preset, f'{field}_max')})."]
    }


def test_a_preset_value_outside_its_bounds_is_refused() -> None:
    preset = ResourcePreset(slug="p", display_name="P", cpu=Decimal("8"), cpu_max=Decimal("4"))
    assert errors_of(preset) == {"cpu": ["The value (8) must be between 0.1 and 4."]}


def test_preset_values_are_not_negative() -> None:
    preset = ResourcePreset(slug="p", display_name="P", cpu_min=Decimal("-1"))
    assert "cpu_min" in errors_of(preset)


@pytest.mark.parametrize("pattern", ["Team_A", "user-{user}", "-x", "a" * 64, "user {username}"])
def test_a_namespace_pattern_must_give_a_namespace_name(pattern: str) -> None:
    assert "pattern" in errors_of(NamespaceOption(pattern=pattern))


@pytest.mark.parametrize("pattern", ["analytics", "user-{username}", "{username}-lab"])
def test_good_namespace_patterns_pass(pattern: str) -> None:
    NamespaceOption(pattern=pattern).full_clean()


def test_namespace_and_rule_name_lists_must_be_lists_of_names() -> None:
    assert errors_of(NamespaceOption(pattern="a", users="alice")) == {"users": ["Must be a JSON list of names."]}
    assert errors_of(AccessRule(name="r", groups=[1])) == {"groups": ["Must be a JSON list of names."]}


def test_an_access_rule_names_someone() -> None:
    assert errors_of(AccessRule(name="r")) == {"__all__": ["Name at least one user or group, or tick 'everyone'."]}
    AccessRule(name="r", everyone=True).full_clean()


def test_an_access_rule_ceiling_is_above_zero() -> None:
    rule = AccessRule(name="r", everyone=True, max_cpu=Decimal("0"), max_mem=0)
    assert errors_of(rule) == {
        "max_cpu": ["A ceiling must be above zero."],
        "max_mem": ["A ceiling must be above zero."],
    }


def test_manual_entries_need_a_url_of_the_right_kind() -> None:
    hdfs = HdfsInstance(key="a:b", name="b", source=Source.MANUAL)
    assert errors_of(hdfs) == {"url_override": ["A manual HDFS instance needs a URL."]}
    hdfs.url_override = "http://x"
    assert errors_of(hdfs) == {"url_override": ["The URL must start with hdfs:// or viewfs://."]}
    graph = GafferGraph(key="a:g", name="g", source=Source.MANUAL)
    assert errors_of(graph) == {"url_override": ["A manual Gaffer graph needs a REST API URL."]}
    graph.url_override = "ftp://x"
    assert errors_of(graph) == {"url_override": ["The URL must start with http:// or https://."]}


def test_an_iam_role_override_is_an_arn() -> None:
    account = ServiceAccount(key="a:sa", name="sa", role_arn_override="my-role")
    assert errors_of(account) == {"role_arn_override": ["An IAM role ARN starts with arn:"]}


def test_spark_defaults_are_spark_properties_on_one_line() -> None:
    assert "key" in errors_of(SparkDefault(key="executor.memory", value="2g"))
    assert "key" in errors_of(SparkDefault(key="spark.executor memory", value="2g"))
    assert "value" in errors_of(SparkDefault(key="spark.executor.memory", value="2g\nspark.master local"))


def test_the_demo_data_is_valid_and_loads_idempotently() -> None:
    models = (Profile, ResourcePreset, NamespaceOption, AccessRule, HdfsInstance, GafferGraph, SparkDefault)
    assert load_demo()["created"] > 0
    counts = {model: model.objects.count() for model in models}
    for model in models:
        for row in model.objects.all():
            row.full_clean()

    assert load_demo() == {"created": 0}

    assert {model: model.objects.count() for model in models} == counts
    assert set(ResourcePreset.objects.values_list("slug", flat=True)) == {"small", "medium", "large"}
    scientists = AccessRule.objects.get(name="Data scientists")
    assert scientists.groups == ["data-science"]
    assert list(scientists.hdfs_instances.values_list("key", flat=True)) == ["analytics:secure-hdfs"]
