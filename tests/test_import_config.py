"""import_config: the original server's YAML files become the portal's rows, all or nothing, idempotently."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    Namespace,
    NamespaceOption,
    Profile,
    ResourcePreset,
    Source,
    SparkDefault,
)

FIXTURES = Path(__file__).parent / "fixtures" / "original-conf"

pytestmark = pytest.mark.django_db


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A copy of the sample conf/ folder that a test may spoil."""
    target = tmp_path / "conf"
    shutil.copytree(FIXTURES, target)
    return target


@pytest.fixture
def discovered() -> dict[str, Any]:
    """What a sync would have found before the import: the instances the static files restrict."""
    return {
        "hdfs": HdfsInstance.objects.create(
            key="analytics:hdfs",
            namespace="analytics",
            name="hdfs",
            observed_url="hdfs://hdfs-namenodes.analytics.svc:8020",
        ),
        "open_hdfs": HdfsInstance.objects.create(
            key="other:hdfs", namespace="other", name="hdfs", observed_url="hdfs://hdfs-namenodes.other.svc:8020"
        ),
        "graph": GafferGraph.objects.create(
            key="analytics:roads",
            namespace="analytics",
            name="roads",
            observed_url="http://roads-api.analytics.svc:80/rest",
            observed_description="From graphConfig.json",
            store_secret="roads-store-properties",
        ),
    }


def run_import(directory: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_config", str(directory), *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row the import may touch, with access rules' relations, in a comparable form."""
    state: dict[str, list[dict[str, Any]]] = {}
    for model in (Profile, ResourcePreset, HdfsInstance, GafferGraph, NamespaceOption, SparkDefault, AccessRule):
        state[model.__name__] = [model_to_dict(row) for row in model.objects.order_by("pk")]
    for rule in state["AccessRule"]:
        for relation in ("profiles", "namespaces", "hdfs_instances", "gaffer_graphs", "service_accounts"):
            rule[relation] = sorted(item.pk for item in rule[relation])
    return state


def test_import_creates_the_rows_the_files_describe(conf: Path, discovered: dict[str, Any]) -> None:
    output = run_import(conf)

    python, pyspark, tools = Profile.objects.order_by("order")
    assert (python.slug, python.default, python.image) == ("python", True, "jupyter/scipy-notebook:2023-10-20")
    assert pyspark.slug == "gaffer-pyspark" and not pyspark.default
    assert (pyspark.enable_hdfs, pyspark.enable_gaffer, pyspark.enable_spark) == (True, True, True)
    assert pyspark.spark_image == "gchq/spark-py:3.1.2"
    assert pyspark.spark_ingress_host == "{{USERNAME}}-{{SERVERNAME}}.spark.example.org"
    assert pyspark.spark_ingress_path == "/"
    # The image is a column of its own; the rest of kubespawner_override is kept as extra overrides.
    assert pyspark.kubespawner_override == {"default_url": "/lab"}
    assert pyspark.kubespawner_overrides() == {"default_url": "/lab", "image": "gchq/gaffer-pyspark-notebook:2.0.0"}
    assert (tools.slug, tools.display_name, tools.enable_hdfs, tools.enable_spark) == (
        "hdfs-tools",
        "HDFS tools",
        True,
        False,
    )

    # The static entry with a discovered id restricts that row and leaves it discovered.
    analytics = HdfsInstance.objects.get(key="analytics:hdfs")
    assert analytics.source == Source.DISCOVERED and analytics.url_override == ""
    assert analytics.url == "hdfs://hdfs-namenodes.analytics.svc:8020"
    legacy = HdfsInstance.objects.get(key="legacy:hdfs")
    assert (legacy.source, legacy.namespace, legacy.name) == (Source.MANUAL, "legacy", "hdfs")
    assert legacy.url == "hdfs://legacy-namenode.example.org:8020"
    assert legacy.description == "The cluster from before Kubernetes."
    archive = HdfsInstance.objects.get(key="shared:archive")
    assert archive.source == Source.MANUAL and archive.url.startswith("hdfs://archive-namenode")
    assert HdfsInstance.objects.count() == 4

    roads = GafferGraph.objects.get(key="analytics:roads")
    assert roads.source == Source.DISCOVERED and roads.url == "http://roads-api.analytics.svc:80/rest"
    assert roads.description.startswith('Road traffic counts. Quotes " and </script>')
    crime = GafferGraph.objects.get(key="external:crime")
    assert (crime.source, crime.url) == (Source.MANUAL, "https://gaffer.example.org/rest")

    rules = {rule.name: rule for rule in AccessRule.objects.all()}
    assert set(rules) == {
        "imported: hdfs analytics:hdfs",
        "imported: hdfs legacy:hdfs",
        "imported: graph analytics:roads",
    }
    rule = rules["imported: hdfs analytics:hdfs"]
    assert (rule.everyone, rule.users, rule.groups) == (False, ["alice", "bob"], [])
    assert list(rule.hdfs_instances.all()) == [analytics]
    assert rules["imported: hdfs legacy:hdfs"].users == ["alice"]
    assert list(rules["imported: graph analytics:roads"].gaffer_graphs.all()) == [roads]
    assert not rules["imported: graph analytics:roads"].hdfs_instances.exists()

    options = {o.pattern: o for o in NamespaceOption.objects.all()}
    assert list(options) == ["user-{username}", "analytics", "shared"]
    assert options["user-{username}"].users == [] and options["user-{username}"].templated
    assert options["analytics"].users == ["alice", "bob"]
    assert options["shared"].users == []

    assert dict(SparkDefault.objects.values_list("key", "value")) == {
        "spark.master": "k8s://https://kubernetes.default.svc",
        "spark.submit.deployMode": "client",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.executor.instances": "2",
    }
    assert list(SparkDefault.objects.values_list("key", flat=True)) == [  # the file's order
        "spark.master",
        "spark.submit.deployMode",
        "spark.kubernetes.executor.deleteOnTermination",
        "spark.executor.instances",
    ]

    assert "Profile: 3 created, 0 updated, 0 unchanged" in output
    assert "HDFS instance: 2 created, 0 updated, 1 unchanged" in output
    assert "Gaffer graph: 1 created, 1 updated, 0 unchanged" in output  # the file describes the discovered graph
    assert "Access rule: 3 created, 0 updated, 0 unchanged" in output
    assert "Namespace option: 3 created" in output
    assert "Spark default: 4 created" in output
    assert "Total: 16 created, 1 updated" in output


def test_running_it_twice_changes_nothing(conf: Path, discovered: dict[str, Any]) -> None:
    run_import(conf)
    before = snapshot()

    output = run_import(conf)

    assert "Total: 0 created, 0 updated" in output
    assert "Profile: 0 created, 0 updated, 3 unchanged" in output
    assert "Access rule: 0 created, 0 updated, 3 unchanged" in output
    assert snapshot() == before


def test_operator_choices_outside_the_files_survive_a_reimport(conf: Path, discovered: dict[str, Any]) -> None:
    run_import(conf)
    HdfsInstance.objects.filter(key="shared:archive").update(hidden=True, display_name="Archive")
    operator_rule = AccessRule.objects.create(name="Analysts", groups=["analysts"])
    operator_rule.hdfs_instances.add(discovered["open_hdfs"])

    output = run_import(conf)

    assert "Total: 0 created, 0 updated" in output
    archive = HdfsInstance.objects.get(key="shared:archive")
    assert archive.hidden and archive.display_name == "Archive"
    assert list(AccessRule.objects.get(name="Analysts").hdfs_instances.all()) == [discovered["open_hdfs"]]


def test_a_changed_file_updates_rows_and_drops_the_imports_own_rule(conf: Path, discovered: dict[str, Any]) -> None:
    run_import(conf)
    (conf / "hdfs.yaml").write_text(
        "- id: analytics:hdfs\n"  # no users any more: open to everyone again
        "- id: legacy:hdfs\n"
        "  url: hdfs://legacy-namenode.example.org:9000\n"
        "  users: [alice, carol]\n"
    )

    output = run_import(conf)

    assert not AccessRule.objects.filter(name="imported: hdfs analytics:hdfs").exists()
    assert AccessRule.objects.get(name="imported: hdfs legacy:hdfs").users == ["alice", "carol"]
    assert HdfsInstance.objects.get(key="legacy:hdfs").url == "hdfs://legacy-namenode.example.org:9000"
    assert "HDFS instance: 0 created, 1 updated, 1 unchanged" in output
    assert "Access rule: 0 created, 1 updated, 1 unchanged, 1 deleted" in output


def test_the_files_default_profile_takes_over_from_an_existing_one(conf: Path, discovered: dict[str, Any]) -> None:
    Profile.objects.create(slug="old", display_name="Old", image="old:1", default=True)

    output = run_import(conf)

    assert list(Profile.objects.filter(default=True).values_list("slug", flat=True)) == ["python"]
    assert "Profile: 3 created, 1 updated" in output


def test_dry_run_reports_and_saves_nothing(conf: Path, discovered: dict[str, Any]) -> None:
    before = snapshot()

    output = run_import(conf, "--dry-run")

    assert "Total: 16 created, 1 updated (dry run: nothing saved)" in output
    assert snapshot() == before


def test_other_shapes_of_the_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(
        "singleuser:\n"
        "  profileList:\n"
        "    - display_name: Minimal\n"
        "      kubespawner_override: {image: 'jupyter/minimal-notebook:latest'}\n"
        "      default: true\n"
    )
    (tmp_path / "namespaces.yml").write_text("user-{username}:\nteam-a: [alice]\n")
    (tmp_path / "graphs.yaml").write_text(
        "team-a:g1:\n  url: http://g1.team-a.svc/rest\n  users: 'alice, bob'\n  groups: [analysts]\n"
    )

    output = run_import(tmp_path)

    assert Profile.objects.get().slug == "minimal"
    assert list(NamespaceOption.objects.values_list("pattern", "users")) == [
        ("user-{username}", []),
        ("team-a", ["alice"]),
    ]
    graph = GafferGraph.objects.get()
    assert (graph.key, graph.namespace, graph.name) == ("team-a:g1", "team-a", "g1")
    rule = AccessRule.objects.get()
    assert (rule.users, rule.groups) == (["alice", "bob"], ["analysts"])
    assert "Skipped hdfs.yaml: not found" in output


def test_keys_the_portal_ignores_are_reported(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(
        "- display_name: Py\n  kubespawner_override: {image: py:1}\n  enable_sprak: true\n"
    )

    output = run_import(tmp_path)

    assert "Warning: profiles.yaml, entry 1 (py): ignored enable_sprak" in output


BAD_INPUTS = [
    pytest.param(
        "profiles.yaml",
        "- display_name: Python\n  kubespawner_override: {image: [unclosed\n",
        "profiles.yaml: not valid YAML",
        id="yaml-syntax",
    ),
    pytest.param(
        "profiles.yaml",
        "- display_name: Python\n  kubespawner_override: {image: py:1}\n"
        "- display_name: Spark\n  slug: spark\n  kubespawner_override: {image: sp:1}\n  enable_spark: true\n",
        "profiles.yaml, entry 2 (spark): spark_image: A profile that enables Spark needs a Spark image.",
        id="spark-without-image",
    ),
    pytest.param(
        "profiles.yaml",
        "- {display_name: A, default: true, kubespawner_override: {image: a:1}}\n"
        "- {display_name: B, default: true, kubespawner_override: {image: b:1}}\n",
        "profiles.yaml, entry 2 (b): a second default profile (entry 1 (a) is one)",
        id="two-defaults",
    ),
    pytest.param(
        "profiles.yaml",
        "- {display_name: A, kubespawner_override: {cpu_limit: 2}}\n",
        "profiles.yaml, entry 1 (a): 'kubespawner_override.image' is required",
        id="profile-without-image",
    ),
    pytest.param(
        "profiles.yaml",
        "- {display_name: A, kubespawner_override: {image: a:1}}\n- {display_name: A, kubespawner_override: {image: b:1}}\n",
        "profiles.yaml, entry 2 (a): slug 'a' is used twice",
        id="duplicate-slug",
    ),
    pytest.param(
        "profiles.yaml",
        "- {display_name: A, kubespawner_override: {image: a:1}, enable_hdfs: 'yes please'}\n",
        "profiles.yaml, entry 1 (a): 'enable_hdfs' must be true or false, not 'yes please'",
        id="flag-not-boolean",
    ),
    pytest.param(
        "hdfs.yaml",
        "- id: shared:archive\n  url: hdfs://archive:8020\n- id: legacy:hdfs\n  url: http://legacy:8020\n",
        "hdfs.yaml, entry 2 (legacy:hdfs): url: The URL must start with hdfs:// or viewfs://.",
        id="hdfs-bad-url",
    ),
    pytest.param(
        "hdfs.yaml",
        "- id: nowhere:hdfs\n  users: [alice]\n",
        "hdfs.yaml, entry 1 (nowhere:hdfs): no url, and no discovered HDFS instance has the id 'nowhere:hdfs'",
        id="hdfs-restricts-nothing",
    ),
    pytest.param(
        "hdfs.yaml",
        "- {id: 'a:b', namespace: c}\n",
        "hdfs.yaml, entry 1 (a:b): id 'a:b' does not match namespace 'c'",
        id="hdfs-id-mismatch",
    ),
    pytest.param("hdfs.yaml", "just text\n", "hdfs.yaml: must be a list of entries, not str", id="hdfs-not-a-list"),
    pytest.param(
        "graphs.yaml",
        "- id: analytics:roads\n  users: 5\n",
        "graphs.yaml, entry 1 (analytics:roads): 'users' must be a list of names",
        id="graph-users-not-a-list",
    ),
    pytest.param(
        "namespaces.yaml",
        "- user-{username}\n- name: Team_A\n",
        "namespaces.yaml, entry 2 (Team_A): name: A namespace name is lower-case letters",
        id="namespace-not-dns",
    ),
    pytest.param(
        "spark-defaults.yaml",
        "spark.master: local\nexecutor.memory: 2g\n",
        "spark-defaults.yaml, entry 'executor.memory': key: A Spark property starts with 'spark.'",
        id="spark-key",
    ),
    pytest.param(
        "spark-defaults.yaml",
        "spark.master: {nested: true}\n",
        "spark-defaults.yaml, entry 'spark.master': the value must be text, a number or true/false",
        id="spark-value",
    ),
]


@pytest.mark.parametrize(("file", "content", "message"), BAD_INPUTS)
def test_bad_input_names_file_and_entry_and_imports_nothing(
    conf: Path, discovered: dict[str, Any], file: str, content: str, message: str
) -> None:
    # The other files are good, and most come first: they must not be half-written.
    (conf / file).write_text(content)
    before = snapshot()

    with pytest.raises(CommandError) as raised:
        run_import(conf)

    assert message in str(raised.value)
    assert str(raised.value).startswith("Nothing imported: ")
    assert snapshot() == before


def test_a_folder_without_the_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"holds none of profiles\.yaml"):
        run_import(tmp_path)
    with pytest.raises(CommandError, match="is not a folder"):
        run_import(tmp_path / "absent")


def test_the_imported_files_offer_what_the_original_offered(conf: Path, discovered: dict[str, Any]) -> None:
    """Listed users get the restricted items, others do not; open items stay open to all."""
    from spawning.selectors import options_data

    for name in ("user-alice", "user-bob", "user-carol", "analytics", "shared"):
        Namespace.objects.create(name=name)
    run_import(conf)

    def offered(username: str) -> dict[str, list[str]]:
        data = options_data(username=username, server_name="", groups=[], default_namespace=f"user-{username}")
        return {
            "profiles": [p["slug"] for p in data["profiles"]],
            "hdfs": sorted(i["id"] for i in data["hdfs"]),
            "gaffer_graphs": sorted(g["id"] for g in data["gaffer_graphs"]),
            "namespaces": sorted(n["name"] for n in data["namespaces"]),
        }

    assert offered("alice") == {
        "profiles": ["python", "gaffer-pyspark", "hdfs-tools"],
        "hdfs": ["analytics:hdfs", "legacy:hdfs", "other:hdfs", "shared:archive"],
        "gaffer_graphs": ["analytics:roads", "external:crime"],
        "namespaces": ["analytics", "shared", "user-alice"],
    }
    assert offered("bob") == {
        "profiles": ["python", "gaffer-pyspark", "hdfs-tools"],
        "hdfs": ["analytics:hdfs", "other:hdfs", "shared:archive"],
        "gaffer_graphs": ["external:crime"],
        "namespaces": ["analytics", "shared", "user-bob"],
    }
    assert offered("carol") == {
        "profiles": ["python", "gaffer-pyspark", "hdfs-tools"],
        "hdfs": ["other:hdfs", "shared:archive"],
        "gaffer_graphs": ["external:crime"],
        "namespaces": ["shared", "user-carol"],
    }
