"""import_config: the original's conf/ files and Helm values become the portal's rows, all or nothing, idempotently.

Database only (PostgreSQL or SQLite); what these rows offer each user against a
real cluster is in tests/test_import_offers.py.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
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
    MachineType,
    NamespaceOption,
    Profile,
    ProfileOption,
    Source,
    SparkDefault,
)

FIXTURES = Path(__file__).parent / "fixtures"
CONF = FIXTURES / "original-conf"
CHART_VALUES = FIXTURES / "gaffer-jhub-values.yaml"
Z2JH_VALUES = FIXTURES / "z2jh-values.yaml"

pytestmark = pytest.mark.django_db


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A copy of the sample conf/ folder that a test may spoil."""
    target = tmp_path / "conf"
    shutil.copytree(CONF, target)
    return target


def run_import(*args: str) -> str:
    out = StringIO()
    call_command("import_config", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row the import may touch, with access rules' relations, in a comparable form."""
    state: dict[str, list[dict[str, Any]]] = {}
    for model in (
        Profile,
        MachineType,
        ProfileOption,
        HdfsInstance,
        GafferGraph,
        NamespaceOption,
        SparkDefault,
        AccessRule,
    ):
        state[model.__name__] = [model_to_dict(row) for row in model.objects.order_by("pk")]
    for rule in state["AccessRule"]:
        for relation in ("profiles", "namespaces", "hdfs_instances", "gaffer_graphs", "service_accounts"):
            rule[relation] = sorted(item.pk for item in rule[relation])
    return state


def rule_users(kind: str, key: str) -> list[str] | None:
    rule = AccessRule.objects.filter(name=f"imported: {kind} {key}").first()
    return None if rule is None else rule.users


# --- The server's sample conf/ shape ----------------------------------------


def test_sample_conf_becomes_the_rows_the_original_read() -> None:
    output = run_import(str(CONF))

    # namespaces.yaml: Pug templates become {username} patterns; the static mapping's keys are
    # namespaces with their user lists (empty or null: everyone). No row is named after a YAML key.
    options = {o.pattern: o.users for o in NamespaceOption.objects.all()}
    assert options == {
        "user-{username}": [],
        "scratch-{username}": [],
        "gaffer-data": [],
        "analytics": [],
        "jhub": ["alice"],
        "kube-system": ["admin"],
        "retired-team": ["alice"],
    }
    # Sorted by pattern, as the original sorted a user's namespaces.
    assert list(NamespaceOption.objects.values_list("pattern", flat=True)) == sorted(options)

    # hdfs.yaml: nothing is discovered yet, so every entry stands for itself until the sync finds it.
    hdfs = {h.key: h for h in HdfsInstance.objects.all()}
    assert set(hdfs) == {
        "gaffer-data:road-traffic-hdfs",
        "gaffer-data:open-hdfs",
        "legacy:hdfs",
        "lab:admin-hdfs",
        "analytics:pending-hdfs",
    }
    legacy = hdfs["legacy:hdfs"]
    assert (legacy.source, legacy.static_entry, legacy.namespace, legacy.name, legacy.display_name) == (
        Source.DISCOVERED,
        True,
        "legacy",
        "hdfs",
        "legacy-hdfs",
    )
    assert legacy.url == "hdfs://namenode.legacy.example.com:8020"
    assert legacy.is_offered
    assert hdfs["analytics:pending-hdfs"].url == ""
    assert not hdfs["analytics:pending-hdfs"].is_offered
    assert rule_users("hdfs", "gaffer-data:road-traffic-hdfs") == ["alice"]
    assert rule_users("hdfs", "gaffer-data:open-hdfs") is None
    assert rule_users("hdfs", "legacy:hdfs") is None
    assert rule_users("hdfs", "lab:admin-hdfs") == ["admin"]
    assert rule_users("hdfs", "analytics:pending-hdfs") == ["bob"]

    # graphs.yaml: ids without a namespace, restApi a string or null, graphConfig.description.
    graphs = {g.key: g for g in GafferGraph.objects.all()}
    assert set(graphs) == {"simple-graph", "gaffer-data:road-traffic", "secret", "gaffer-data:staged"}
    simple = graphs["simple-graph"]
    assert (simple.namespace, simple.name, simple.display_name) == ("", "simple-graph", "Simple Graph")
    assert simple.url == "http://simple-gaffer-api.gaffer-data.svc:80/rest/latest"
    assert simple.summary == "A graph with no namespace in its id"
    assert simple.mounted_files() == ("", "", "")
    secret = graphs["secret"]
    assert (secret.url, secret.summary, secret.is_offered) == ("", "For <admin> & nobody else", True)
    assert rule_users("graph", "secret") == ["admin"]
    assert rule_users("graph", "gaffer-data:road-traffic") == ["alice", "bob"]
    assert rule_users("graph", "simple-graph") is None
    assert rule_users("graph", "gaffer-data:staged") is None

    # spark-defaults.yaml: keys as written (the stray quote too), values as JavaScript wrote them.
    assert list(SparkDefault.objects.values_list("key", "value")) == [
        ("spark.master", "k8s://https://kubernetes.default.svc"),
        ("spark.submit.deployMode", "client"),
        ("spark.authenticate", "true"),
        ("spark.ui.killEnabled", "false"),
        ("spark.serializer'", "org.apache.spark.serializer.KryoSerializer"),
        ("spark.driver.cores", "1"),
        ("spark.driver.memory", "1g"),
        ("spark.executor.instances", "2"),
        ("spark.memory.fraction", "0.75"),
    ]

    profiles = {p.slug: p for p in Profile.objects.all()}
    assert set(profiles) == {"minimal", "gaffer-pyspark"}
    assert profiles["minimal"].default and profiles["minimal"].image == "jupyter/minimal-notebook:399cbb986c6b"
    pyspark = profiles["gaffer-pyspark"]
    assert (pyspark.enable_hdfs, pyspark.enable_gaffer, pyspark.enable_spark) == (True, True, True)
    assert pyspark.spark_image == "gchq/spark-py:3.1.2"
    assert pyspark.spark_ingress_host == "{{USERNAME}}-{{SERVERNAME}}.spark.example.com"

    assert "analytics:pending-hdfs): no namenodeClientRpcUrl and not in the cluster" in output
    assert "Stricter than the original: /options and /prespawn answer only the hub's API token" in output
    assert "Warning" not in output
    assert output.rstrip().endswith("Import done.")


def test_a_static_twin_of_a_discovered_instance_only_restricts_it() -> None:
    discovered = HdfsInstance.objects.create(
        key="gaffer-data:road-traffic-hdfs",
        namespace="gaffer-data",
        name="road-traffic-hdfs",
        observed_url="hdfs://road-traffic-hdfs-namenode.gaffer-data.svc:9000",
    )
    run_import(str(CONF))
    discovered.refresh_from_db()
    # The cluster's URL is used, not the file's; the file's users restrict it.
    assert discovered.in_cluster and not discovered.uses_static_entry
    assert discovered.url == "hdfs://road-traffic-hdfs-namenode.gaffer-data.svc:9000"
    assert list(discovered.access_rules.values_list("users", flat=True)) == [["alice"]]


def test_the_same_import_twice_changes_nothing() -> None:
    run_import(str(CONF))
    before = snapshot()
    output = run_import(str(CONF))
    assert "Total: 0 created, 0 updated" in output
    assert snapshot() == before


# --- Helm values ---------------------------------------------------------------


def test_gaffer_jhub_chart_values() -> None:
    output = run_import("--helm-values", str(CHART_VALUES))

    for section in (
        "optionsServer.config.namespaces",
        "optionsServer.config.hdfs",
        "optionsServer.config.graphs",
        "optionsServer.config.sparkDefaults",
        "jupyterhub.singleuser.profileList",
    ):
        assert f"Read gaffer-jhub-values.yaml: {section} (the original's" in output
    assert "Skipped" not in output
    # The chart's default namespaces: one template and `default` open to everyone - not
    # options named after the keys `templated` and `static`.
    assert {o.pattern: o.users for o in NamespaceOption.objects.all()} == {"default": [], "user-{username}": []}
    assert not HdfsInstance.objects.exists()
    assert not GafferGraph.objects.exists()
    spark = dict(SparkDefault.objects.values_list("key", "value"))
    assert len(spark) == 14
    assert spark["spark.serializer'"] == "org.apache.spark.serializer.KryoSerializer"
    assert spark["spark.kubernetes.driver.label.app.kubernetes.io/name"] == "gaffer-jhub"
    assert spark["spark.dynamicAllocation.enabled"] == "true"
    assert spark["spark.dynamicAllocation.executorIdleTimeout"] == "60s"
    assert list(Profile.objects.filter(default=True).values_list("slug", flat=True)) == ["gaffer-pyspark"]
    assert list(Profile.objects.values_list("slug", flat=True)) == ["minimal", "gaffer-pyspark"]

    before = snapshot()
    assert "Total: 0 created, 0 updated" in run_import("--helm-values", str(CHART_VALUES))
    assert snapshot() == before


def test_zero_to_jupyterhub_values() -> None:
    output = run_import("--helm-values", str(Z2JH_VALUES))

    assert "Read z2jh-values.yaml: singleuser.profileList (the original's profiles.yaml)" in output
    assert "Skipped optionsServer.config.namespaces (for namespaces.yaml): not found" in output
    assert "a plain Zero to JupyterHub values file" in output
    # profile_options is mapped now: nothing of the file is reported as ignored.
    assert "not mapped" not in output
    profiles = {p.slug: p for p in Profile.objects.all()}
    assert set(profiles) == {"data-science", "gpu"}
    science = profiles["data-science"]
    assert (science.display_name, science.default, science.image) == (
        "Data Science",
        True,
        "jupyter/datascience-notebook:2023-10-20",
    )
    # Compute traits become each profile's machine type; nothing else was left as an extra override.
    assert science.kubespawner_override == {}
    assert profiles["gpu"].kubespawner_override == {}
    assert list(science.machine_types.values_list("slug", flat=True)) == ["data-science"]
    assert list(profiles["gpu"].machine_types.values_list("slug", flat=True)) == ["gpu"]
    cpu_type = MachineType.objects.get(slug="data-science")
    assert (cpu_type.max_cpu, cpu_type.max_mem, cpu_type.extended_resources) == (Decimal("2"), 4096, {})
    gpu_type = MachineType.objects.get(slug="gpu")
    assert gpu_type.extended_resources == {"nvidia.com/gpu": [1]}
    assert gpu_type.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert "entry 2 (gpu): node_selector, extra_resource_limits became the machine type 'gpu'" in output
    assert profiles["gpu"].kubespawner_overrides()["image"] == "jupyter/tensorflow-notebook:2023-10-20"
    image_option = ProfileOption.objects.get(profile=profiles["gpu"])
    assert (image_option.slug, image_option.display_name, image_option.unlisted_enabled) == ("image", "Image", False)
    assert image_option.choices == [
        {
            "key": "tf",
            "display_name": "TensorFlow",
            "default": False,
            "kubespawner_override": {"image": "jupyter/tensorflow-notebook:2023-10-20"},
        }
    ]
    assert not NamespaceOption.objects.exists()
    assert not SparkDefault.objects.exists()

    before = snapshot()
    assert "Total: 0 created, 0 updated" in run_import("--helm-values", str(Z2JH_VALUES))
    assert snapshot() == before


# --- Shapes the original would not accept -----------------------------------------


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        (
            # The portal's own former list format: the original would have stopped at start-up.
            "namespaces.yaml",
            "- user-{username}\n- name: analytics\n",
            "namespaces.yaml: is a list; expected a mapping with 'templated'",
        ),
        ("namespaces.yaml", "templated: []\n", "namespaces.yaml: has no 'static'; expected a mapping with"),
        (
            "namespaces.yaml",
            "templated: []\nstatic:\n- jhub\n",
            "namespaces.yaml: 'static' is a list; expected a mapping with 'templated'",
        ),
        (
            "namespaces.yaml",
            "templated: []\nstatic:\n  jhub: alice\n",
            "namespaces.yaml, entry static 1 (jhub): the user list is text; expected a list of usernames",
        ),
        (
            "namespaces.yaml",
            "templated:\n- 'user-#{username.toLowerCase()}'\nstatic: {}\n",
            "namespaces.yaml, entry templated 1 (user-#{username.toLowerCase()}): "
            "'#{username.toLowerCase()}' uses more than the username; expected text with #{username}",
        ),
        (
            "namespaces.yaml",
            "templated:\n- 'Users_#{username}'\nstatic: {}\n",
            "namespaces.yaml, entry templated 1 (Users_#{username}): name: A namespace name is lower-case",
        ),
        ("hdfs.yaml", "id: a:b\n", "hdfs.yaml: is a mapping; expected a list of entries {id, name, namespace,"),
        ("hdfs.yaml", "- name: no-id\n", "hdfs.yaml, entry 1: 'id' is required (text)"),
        (
            "hdfs.yaml",
            "- id: ns:x\n  namenodeClientRpcUrl: http://wrong\n",
            "hdfs.yaml, entry 1 (ns:x): namenodeClientRpcUrl: The URL must start with hdfs:// or viewfs://.",
        ),
        (
            "hdfs.yaml",
            "- id: ns:x\n  users: alice\n",
            "hdfs.yaml, entry 1 (ns:x): 'users' is text; expected a list of usernames",
        ),
        (
            "graphs.yaml",
            "- id: g\n  restApi: 8080\n",
            "graphs.yaml, entry 1 (g): 'restApi' is a number; expected a URL",
        ),
        (
            "graphs.yaml",
            "- id: g\n  graphConfig: a description\n",
            "graphs.yaml, entry 1 (g): 'graphConfig' is text; expected {description}",
        ),
        ("graphs.yaml", "- id: g\n- id: g\n", "graphs.yaml, entry 2 (g): id 'g' is listed twice"),
        (
            "spark-defaults.yaml",
            "spark.jars:\n- a.jar\n",
            "spark-defaults.yaml, entry 'spark.jars': the value is a list; expected text, a number or true/false",
        ),
        ("spark-defaults.yaml", "- spark.master\n", "spark-defaults.yaml: is a list; expected a mapping of Spark"),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override: {}\n",
            "profiles.yaml, entry 1 (x): 'kubespawner_override.image' is required",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  default: 'yes'\n  kubespawner_override: {image: a}\n",
            "profiles.yaml, entry 1 (x): 'default' is text; expected true or false",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override: {image: a}\n  profile_options: [image]\n",
            "profiles.yaml, entry 1 (x): 'profile_options' is a list; expected a mapping of option name to",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override: {image: a}\n  profile_options:\n"
            "    image: {choices: {a: {kubespawner_override: fixed}}}\n",
            "profiles.yaml, entry 1 (x), profile_options.image: 'kubespawner_override' is text; expected a mapping",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override: {image: a}\n  profile_options:\n"
            "    image:\n      unlisted_choice: {enabled: true, validation_regex: '(', "
            "kubespawner_override: {image: '{value}'}}\n",
            "profiles.yaml, entry 1 (x), profile_options.image: unlisted_choice.validation_regex: "
            "Not a regular expression",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override: {image: a}\n  profile_options:\n"
            "    Image__Tag: {choices: {a: {}}}\n",
            "profiles.yaml, entry 1 (x), profile_options.Image__Tag: option name: 1 to 30 lower-case letters",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override: {image: a, mem_limit: lots}\n",
            "profiles.yaml, entry 1 (x): 'kubespawner_override.mem_limit' is 'lots'; expected a size such as 4G",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override:\n    image: a\n"
            "    extra_resource_limits: {nvidia.com/gpu: '1'}\n    extra_resource_guarantees: {nvidia.com/gpu: '2'}\n",
            "profiles.yaml, entry 1 (x): 'nvidia.com/gpu': extra_resource_limits and extra_resource_guarantees differ",
        ),
        (
            "profiles.yaml",
            "- display_name: X\n  kubespawner_override:\n    image: a\n    tolerations: [{operator: Sometimes}]\n",
            "profiles.yaml, entry 1 (x): tolerations:",
        ),
    ],
)
def test_a_wrong_shape_names_file_entry_and_expected_shape_and_writes_nothing(
    conf: Path, file: str, text: str, message: str
) -> None:
    (conf / file).write_text(text)
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        run_import(str(conf))
    assert str(raised.value).startswith(f"Nothing imported: {message}")
    assert snapshot() == before


def test_a_wrong_section_in_helm_values_names_it_and_writes_nothing(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        CHART_VALUES.read_text().replace(
            '      templated:\n        - "user-#{username}"\n', '      templated: "user-#{username}"\n'
        )
    )
    with pytest.raises(CommandError) as raised:
        run_import("--helm-values", str(values))
    assert str(raised.value).startswith(
        "Nothing imported: values.yaml (optionsServer.config.namespaces): 'templated' is text; expected a mapping"
    )
    assert snapshot() == {name: [] for name in snapshot()}


def test_a_values_file_with_no_known_section_is_refused(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("hub:\n  config: {}\n")
    with pytest.raises(CommandError, match=r"values.yaml: has none of the sections optionsServer.config.namespaces"):
        run_import("--helm-values", str(values))


def test_a_late_error_rolls_back_the_earlier_sections(conf: Path) -> None:
    # spark-defaults.yaml is written last: its bad key must undo the profiles, HDFS and graphs before it.
    (conf / "spark-defaults.yaml").write_text("hadoop.fs.defaultFS: hdfs://x\n")
    with pytest.raises(CommandError, match=r"spark-defaults.yaml, entry 'hadoop.fs.defaultFS': key: A Spark property"):
        run_import(str(conf))
    assert snapshot() == {name: [] for name in snapshot()}


def test_dry_run_reports_and_saves_nothing() -> None:
    output = run_import(str(CONF), "--dry-run")
    assert "(dry run: nothing saved)" in output
    assert snapshot() == {name: [] for name in snapshot()}


def test_a_folder_and_helm_values_together_are_refused() -> None:
    with pytest.raises(CommandError, match="Give either DIR or --helm-values FILE"):
        run_import(str(CONF), "--helm-values", str(CHART_VALUES))
