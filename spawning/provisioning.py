"""Turn a validated SpawnPlan into cluster objects and the hub's reply, and apply them.

``plan_objects`` and ``plan_reply`` are pure: the same plan gives the same
manifests and reply, with no cluster involved. ``provision`` reads what it must
copy (a Gaffer graph's files, when the notebook runs in another namespace),
applies everything with server-side apply, and removes what an earlier spawn of
the same server made that this one no longer needs.

Names, mount paths, env vars and reply keys follow the original options server
(docs: ORIGINAL-CONTRACT.md, "What /prespawn created"), so an existing hub
config keeps working.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.template.loader import render_to_string

import optionsportal
from kube import names
from kube.client import KubeError, cluster_configured
from kube.concurrent import run_all, run_all_pair, run_settled_pair, values
from kube.provision import (
    CONFIG_MAP,
    INGRESS,
    KINDS,
    SECRET,
    SERVICE,
    AppliedObject,
    ConfigSource,
    LabelledObject,
    ObjectRef,
    apply_object,
    delete_objects,
    list_kind,
    read_config_source,
    read_config_sources,
    ref_of,
)
from spawning.plan import SpawnPlan

__all__ = [
    "DryRunResult",
    "ObjectRef",
    "ProvisionResult",
    "gaffer_source_refs",
    "notebook_labels",
    "owner_selector",
    "plan_objects",
    "plan_reply",
    "provision",
    "provision_dry_run",
]

logger = logging.getLogger(__name__)

# Labels and annotations every object we make carries (cleanup finds them by these).
APP_NAME = "jhub-notebook-config"
MANAGED_BY = "options-portal"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_USERNAME = "hub.jupyter.org/username"
LABEL_SERVERNAME = "hub.jupyter.org/servername"
ANNOTATION_USERNAME = "optionsportal.io/username"
ANNOTATION_SERVERNAME = "optionsportal.io/servername"
ANNOTATION_POD_NAME = "optionsportal.io/pod-name"
ANNOTATION_LAST_APPLIED = "optionsportal.io/last-applied"

# Labels the notebook pod gets through the reply. Our own keys, not KubeSpawner's
# hub.jupyter.org/username, whose value KubeSpawner escapes its own way.
POD_LABEL_USER = "optionsportal.io/notebook-user"
POD_LABEL_SERVER = "optionsportal.io/notebook-server"
POD_LABEL_ROLE = "optionsportal.io/role"
ROLE_NOTEBOOK = "notebook"
ROLE_EXECUTOR = "spark-executor"

OUR_OBJECTS_SELECTOR = f"{LABEL_NAME}={APP_NAME},{LABEL_MANAGED_BY}={MANAGED_BY}"
NOTEBOOK_PODS_SELECTOR = f"{POD_LABEL_ROLE}={ROLE_NOTEBOOK}"

HADOOP_CONF_DIR = "/etc/hadoop/conf"
GAFFER_GRAPH_DIR = "/etc/gaffer/graph/"
GAFFER_SCHEMA_DIR = "/etc/gaffer/schema/"
GAFFER_STORE_DIR = "/etc/gaffer/store/"
SPARK_CONF_DIR = "/opt/spark/conf"
SPARK_UI_PORT = 4040
SPARK_DRIVER_PORT = 7078
SPARK_BLOCK_MANAGER_PORT = 7079
S3A_CREDENTIALS_PROVIDER = "com.amazonaws.auth.WebIdentityTokenCredentialsProvider"

# XML 1.0 cannot hold most control characters, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class ProvisionResult:
    """What /prespawn answers the hub, and which objects it made or updated."""

    reply: dict[str, Any]
    objects: list[ObjectRef]


@dataclass(frozen=True)
class DryRunResult:
    """What /prespawn would answer and apply; ``checked_by`` is ``"server"`` when the apiserver saw it."""

    reply: dict[str, Any]
    manifests: list[dict[str, Any]]
    checked_by: str


# --- Labels ------------------------------------------------------------------


def notebook_labels(plan: SpawnPlan) -> dict[str, str]:
    """Labels for the notebook pod (returned as ``labels``); the Spark driver Service selects them."""
    return {
        POD_LABEL_USER: names.label_value(plan.username),
        POD_LABEL_SERVER: names.label_value(plan.server_name),
        POD_LABEL_ROLE: ROLE_NOTEBOOK,
    }


def owner_selector(username: str, server_name: str) -> str:
    """The label selector for every object we made for one user's server."""
    return (
        f"{OUR_OBJECTS_SELECTOR},{LABEL_USERNAME}={names.label_value(username)},"
        f"{LABEL_SERVERNAME}={names.label_value(server_name)}"
    )


def owned_by(found: LabelledObject, username: str, server_name: str) -> bool:
    """Labels select by the hashed form; the raw annotations make a hash collision harmless."""
    return (
        found.annotations.get(ANNOTATION_USERNAME) == username
        and found.annotations.get(ANNOTATION_SERVERNAME) == server_name
    )


def _metadata(plan: SpawnPlan, *, name: str, component: str, applied_at: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": plan.namespace,
        "labels": {
            LABEL_NAME: APP_NAME,
            LABEL_COMPONENT: component,
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_VERSION: optionsportal.__version__,
            LABEL_USERNAME: names.label_value(plan.username),
            LABEL_SERVERNAME: names.label_value(plan.server_name),
        },
        "annotations": {
            ANNOTATION_USERNAME: plan.username,
            ANNOTATION_SERVERNAME: plan.server_name,
            ANNOTATION_POD_NAME: plan.pod_name,
            ANNOTATION_LAST_APPLIED: applied_at,
        },
    }


# --- Names -------------------------------------------------------------------


def _name(plan: SpawnPlan, prefix: str) -> str:
    return names.object_name(prefix, plan.username, plan.server_name)


def hadoop_config_name(plan: SpawnPlan) -> str:
    return _name(plan, "jhub-hadoop-config")


def spark_config_name(plan: SpawnPlan) -> str:
    return _name(plan, "jhub-spark-config")


def spark_ui_ingress_name(plan: SpawnPlan) -> str:
    return _name(plan, "jhub-spark-ui")


def spark_service_name(plan: SpawnPlan) -> str:
    return names.service_name(plan.pod_name)


def gaffer_copies_needed(plan: SpawnPlan) -> bool:
    """A pod can only mount ConfigMaps and Secrets of its own namespace."""
    return plan.gaffer is not None and plan.gaffer.namespace != plan.namespace


def gaffer_source_refs(plan: SpawnPlan) -> list[ObjectRef]:
    """The graph's own objects that must be read to copy them into the notebook's namespace."""
    if plan.gaffer is None or not gaffer_copies_needed(plan):
        return []
    graph = plan.gaffer
    refs = []
    if graph.graph_config_map:
        refs.append(ObjectRef(CONFIG_MAP, graph.namespace, graph.graph_config_map))
    if graph.schema_config_map:
        refs.append(ObjectRef(CONFIG_MAP, graph.namespace, graph.schema_config_map))
    if graph.store_secret:
        refs.append(ObjectRef(SECRET, graph.namespace, graph.store_secret))
    return refs


# --- Pure builders -----------------------------------------------------------


@dataclass(frozen=True)
class _GafferMount:
    """One of a graph's files sets; ``volume`` is also the name prefix of its copy."""

    volume: str
    kind: str
    source_name: str
    component: str
    mount_path: str


def _gaffer_mounts(plan: SpawnPlan) -> list[_GafferMount]:
    graph = plan.gaffer
    if graph is None:
        return []
    candidates = (
        _GafferMount(
            "jhub-gaffer-graph-config", CONFIG_MAP, graph.graph_config_map, "gaffer-graph-config", GAFFER_GRAPH_DIR
        ),
        _GafferMount("jhub-gaffer-schema", CONFIG_MAP, graph.schema_config_map, "gaffer-schema", GAFFER_SCHEMA_DIR),
        _GafferMount("jhub-gaffer-store", SECRET, graph.store_secret, "gaffer-store", GAFFER_STORE_DIR),
    )
    # A graph an operator added by hand may have no files, only a REST URL.
    return [mount for mount in candidates if mount.source_name]


def _gaffer_mounted_name(plan: SpawnPlan, mount: _GafferMount) -> str:
    return _name(plan, mount.volume) if gaffer_copies_needed(plan) else mount.source_name


def _xml(value: str) -> str:
    return _XML_INVALID.sub("", value)


def _properties_value(value: str) -> str:
    """Escape a value for java.util.Properties, which Spark reads spark-defaults.conf with."""
    escaped = (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t").replace("\f", "\\f")
    )
    if escaped.startswith(" "):
        escaped = "\\" + escaped
    return escaped


def _cpu_text(value: Decimal) -> str:
    # "1.50" → "1.5", "2" stays "2" (normalize alone would give "2E+1" for 20).
    return format(Decimal(str(value)).normalize(), "f")


def spark_properties(plan: SpawnPlan) -> list[tuple[str, str]]:
    """spark-defaults.conf: operator defaults first, then this notebook's own values (which win)."""
    spark = plan.spark
    if spark is None:
        return []
    labels = notebook_labels(plan)
    cores = _cpu_text(spark.executor_cpu)
    own: list[tuple[str, str]] = [
        ("spark.kubernetes.container.image", spark.image),
        ("spark.kubernetes.namespace", plan.namespace),
        ("spark.kubernetes.executor.podTemplateFile", f"{SPARK_CONF_DIR}/executor-pod.yaml"),
    ]
    if plan.service_account is not None:
        own += [
            ("spark.kubernetes.authenticate.driver.serviceAccountName", plan.service_account.name),
            ("spark.kubernetes.authenticate.executor.serviceAccountName", plan.service_account.name),
        ]
    own += [(f"spark.kubernetes.driver.label.{key}", value) for key, value in labels.items()]
    own += [(f"spark.kubernetes.executor.label.{key}", value) for key, value in _executor_labels(plan).items()]
    own += [
        ("spark.kubernetes.executor.request.cores", cores),
        ("spark.kubernetes.executor.limit.cores", cores),
        ("spark.executor.memory", f"{spark.executor_mem_mb}m"),
        ("spark.ui.port", str(SPARK_UI_PORT)),
        ("spark.driver.host", f"{spark_service_name(plan)}.{plan.namespace}.svc"),
        ("spark.driver.bindAddress", "0.0.0.0"),  # noqa: S104 - the driver must accept executors' connections
        ("spark.driver.port", str(SPARK_DRIVER_PORT)),
        ("spark.driver.blockManager.port", str(SPARK_BLOCK_MANAGER_PORT)),
    ]
    if plan.hdfs is not None:
        own += [
            ("spark.eventLog.enabled", "true"),
            ("spark.eventLog.dir", f"hdfs:///user/{plan.username}/spark-logs/"),
        ]
    # A default the notebook sets itself would be overridden anyway; leaving it
    # out keeps the file saying what actually applies.
    ours = {key for key, _ in own}
    defaults = [(key, value) for key, value in spark.defaults if key not in ours]
    return defaults + own


def _executor_labels(plan: SpawnPlan) -> dict[str, str]:
    # Not the notebook's role label: the driver's headless Service must not pick executors.
    labels = notebook_labels(plan)
    labels[POD_LABEL_ROLE] = ROLE_EXECUTOR
    return labels


def _spark_ingress(plan: SpawnPlan) -> tuple[str, str] | None:
    spark = plan.spark
    if spark is None or not (spark.ingress_host or spark.ingress_path):
        return None
    host = names.expand_template(spark.ingress_host, username=plan.username, server_name=plan.server_name)
    path = names.expand_template(spark.ingress_path, username=plan.username, server_name=plan.server_name)
    # The default server's name is empty: "{{USERNAME}}-{{SERVERNAME}}.example.org"
    # must still give a valid host, and "/{{USERNAME}}/{{SERVERNAME}}/" a tidy path.
    host = re.sub(r"\.{2,}", ".", re.sub(r"\.-+|-+\.", ".", host)).strip(".-")
    path = "/" + re.sub(r"/{2,}", "/", path).lstrip("/")
    return host, path


def spark_ui_url(plan: SpawnPlan) -> str:
    ingress = _spark_ingress(plan)
    if ingress is None:
        return f"http://{spark_service_name(plan)}.{plan.namespace}.svc:{SPARK_UI_PORT}/"
    host, path = ingress
    return f"https://{host}{path}" if host else path


def _stamp(applied_at: datetime | None) -> str:
    moment = (applied_at or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_objects(
    plan: SpawnPlan,
    *,
    gaffer_sources: Mapping[ObjectRef, ConfigSource] | None = None,
    applied_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every manifest the plan needs, as plain dicts ready for server-side apply.

    ``gaffer_sources`` holds the graph's ConfigMaps/Secret (see
    ``gaffer_source_refs``) when they must be copied into another namespace.
    """
    stamp = _stamp(applied_at)
    objects: list[dict[str, Any]] = []

    def metadata(name: str, component: str) -> dict[str, Any]:
        return _metadata(plan, name=name, component=component, applied_at=stamp)

    if plan.hdfs is not None:
        context = {
            "hdfs_url": _xml(plan.hdfs.url),
            "hadoop_conf_dir": shlex.quote(HADOOP_CONF_DIR),
            "hadoop_user_name": shlex.quote(plan.username),
        }
        objects.append(
            {
                "apiVersion": "v1",
                "kind": CONFIG_MAP,
                "metadata": metadata(hadoop_config_name(plan), "hadoop-config"),
                "data": {
                    "core-site.xml": render_to_string("hadoop/core-site.xml", context),
                    "hadoop-env.sh": render_to_string("hadoop/hadoop-env.sh", context),
                    "log4j.properties": render_to_string("hadoop/log4j.properties", context),
                },
            }
        )

    if gaffer_copies_needed(plan):
        sources = gaffer_sources or {}
        for mount in _gaffer_mounts(plan):
            assert plan.gaffer is not None
            ref = ObjectRef(mount.kind, plan.gaffer.namespace, mount.source_name)
            if ref not in sources:
                raise ValueError(f"the contents of {ref.kind} {ref.namespace}/{ref.name} are needed to copy it")
            source = sources[ref]
            copy: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": mount.kind,
                "metadata": metadata(_name(plan, mount.volume), mount.component),
                "data": dict(source.data),
            }
            if mount.kind == SECRET:
                copy["type"] = source.secret_type or "Opaque"
            elif source.binary_data:
                copy["binaryData"] = dict(source.binary_data)
            objects.append(copy)

    if plan.spark is not None:
        objects.extend(_spark_objects(plan, metadata))
    return objects


def _spark_objects(plan: SpawnPlan, metadata: Callable[[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    assert plan.spark is not None
    executor_context = {
        "labels": [(key, json.dumps(value)) for key, value in _executor_labels(plan).items()],
        "service_account": json.dumps(plan.service_account.name) if plan.service_account else "",
    }
    env_context = {
        "spark_conf_dir": shlex.quote(SPARK_CONF_DIR),
        "hadoop_conf_dir": shlex.quote(HADOOP_CONF_DIR) if plan.hdfs is not None else "",
    }
    properties = [(key, _properties_value(value)) for key, value in spark_properties(plan)]
    service = spark_service_name(plan)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": CONFIG_MAP,
            "metadata": metadata(spark_config_name(plan), "spark-config"),
            "data": {
                "spark-defaults.conf": render_to_string("spark/spark-defaults.conf", {"properties": properties}),
                "executor-pod.yaml": render_to_string("spark/executor-pod.yaml", executor_context),
                "spark-env.sh": render_to_string("spark/spark-env.sh", env_context),
            },
        },
        {
            "apiVersion": "v1",
            "kind": SERVICE,
            "metadata": metadata(service, "spark-driver"),
            "spec": {
                # Headless: executors reach the driver at the pod's own address.
                "clusterIP": "None",
                "selector": notebook_labels(plan),
                "publishNotReadyAddresses": True,
                "ports": [
                    {"name": "spark-ui", "port": SPARK_UI_PORT, "targetPort": SPARK_UI_PORT, "protocol": "TCP"},
                    {
                        "name": "spark-driver",
                        "port": SPARK_DRIVER_PORT,
                        "targetPort": SPARK_DRIVER_PORT,
                        "protocol": "TCP",
                    },
                    {
                        "name": "spark-blockmanager",
                        "port": SPARK_BLOCK_MANAGER_PORT,
                        "targetPort": SPARK_BLOCK_MANAGER_PORT,
                        "protocol": "TCP",
                    },
                ],
            },
        },
    ]
    ingress = _spark_ingress(plan)
    if ingress is not None:
        host, path = ingress
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": "Prefix",
                        "backend": {"service": {"name": service, "port": {"number": SPARK_UI_PORT}}},
                    }
                ]
            }
        }
        if host:
            rule["host"] = host
        objects.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": INGRESS,
                "metadata": metadata(spark_ui_ingress_name(plan), "spark-ui"),
                "spec": {"rules": [rule]},
            }
        )
    return objects


def _storage_labels(plan: SpawnPlan) -> dict[str, str]:
    # What discovery reads a volume's owner from (labels only: KubeSpawner 1.1
    # has no annotations for the claim).
    volume_name = plan.volume.volume_name or plan.server_name or "default"
    return {
        "app.kubernetes.io/name": "jupyterhub",
        "app.kubernetes.io/component": "notebook-volume",
        LABEL_USERNAME: names.owner_label_value(plan.username),
        LABEL_SERVERNAME: names.owner_label_value(plan.server_name),
        "hub.jupyter.org/volume-name": names.owner_label_value(volume_name),
    }


# Reply keys beyond the original contract's; sent only to a hub that asks for them.
EXTENDED_REPLY_KEYS = frozenset({"image", "kubespawner_override"})


def plan_reply(plan: SpawnPlan) -> dict[str, Any]:
    """The override keys the hub applies to its spawner (see the contract's table)."""
    cpu = float(plan.cpu)
    memory = f"{plan.mem_mb}M"
    env: dict[str, str] = {}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []

    def mount(volume: dict[str, Any], path: str) -> None:
        volumes.append(volume)
        mounts.append({"name": volume["name"], "mountPath": path, "readOnly": True})

    if plan.hdfs is not None:
        env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
        env["HADOOP_USER_NAME"] = plan.username
        mount({"name": "jhub-hadoop-config", "configMap": {"name": hadoop_config_name(plan)}}, HADOOP_CONF_DIR)

    if plan.gaffer is not None:
        if plan.gaffer.url:
            # A graph with no REST API (a static entry with restApi null) sets none, as in the original.
            env["GAFFER_REST_API_URL"] = plan.gaffer.url
        for gaffer in _gaffer_mounts(plan):
            name = _gaffer_mounted_name(plan, gaffer)
            source = {"secret": {"secretName": name}} if gaffer.kind == SECRET else {"configMap": {"name": name}}
            mount({"name": gaffer.volume, **source}, gaffer.mount_path)

    if plan.spark is not None:
        env["SPARK_CONF_DIR"] = SPARK_CONF_DIR
        env["SPARK_UI_URL"] = spark_ui_url(plan)
        mount({"name": "jhub-spark-config", "configMap": {"name": spark_config_name(plan)}}, SPARK_CONF_DIR)

    reply: dict[str, Any] = {
        "namespace": plan.namespace,
        # The original hub took the image from its own profile list; ours asks
        # the portal, so operators change images in one place.
        "image": plan.image,
        "resources": {
            "cpu_guarantee": cpu,
            "cpu_limit": cpu,
            "mem_guarantee": memory,
            "mem_limit": memory,
            "storage_capacity": f"{plan.volume.size_gb}G",
        },
        "env": env,
        "labels": notebook_labels(plan),
        "storage_extra_labels": _storage_labels(plan),
        "volumes": volumes,
        "volumeMounts": mounts,
    }
    if plan.service_account is not None:
        reply["serviceAccount"] = plan.service_account.name
    if plan.volume.existing_claim:
        reply["pvc_name"] = plan.volume.existing_claim
    if plan.kubespawner_override:
        reply["kubespawner_override"] = dict(plan.kubespawner_override)
    return reply


# --- Applying ----------------------------------------------------------------


def provision(plan: SpawnPlan, *, previous: Sequence[ObjectRef] = ()) -> ProvisionResult:
    """Apply everything the plan needs; raise a KubeError (the view answers 503) if any apply fails.

    Round trips: the Gaffer files are read first only when they must be copied;
    then every apply runs side by side, together with the listing of what this
    server already has. Objects an earlier spawn of the same server made that
    this plan does not need (another namespace, Spark no longer chosen, a
    Gaffer store copy) are deleted afterwards, so credentials copied for an old
    choice do not linger.

    On failure, objects this call *created* (HTTP 201) are deleted again, best
    effort, so a refused spawn leaves no half-made new set behind. Objects that
    existed before are left as they are: they belong to the server's earlier
    spawn, a retry re-applies them (apply is idempotent and converges), and
    /poststop or the sweep removes them if no notebook follows. If that delete
    fails too (the apiserver is gone), the objects still carry our labels and a
    last-applied time, so the sweep collects them after its grace period.

    What an earlier spawn left is found two ways: ``previous``, the objects the
    last recorded spawn of this server made (exact, from the database; the
    caller holds the server's lock, so that record is complete), and a listing
    from the apiserver's watch cache (cheap, and it also finds objects no record
    names, such as those of a spawn recorded before a database restore).
    """
    selector = owner_selector(plan.username, plan.server_name)
    listings = [partial(list_kind, kind, selector, cached=True) for kind in KINDS]

    sources: dict[ObjectRef, ConfigSource] = {}
    existing: list[LabelledObject] = []
    source_refs = gaffer_source_refs(plan)
    if source_refs:
        # The manifests need the files first; the listing rides along in the same round trip.
        read, listed = run_all_pair([partial(read_config_source, ref) for ref in source_refs], listings)
        sources = {source.ref: source for source in read}
        existing = [found for per_kind in listed for found in per_kind]
        listings = []

    manifests = plan_objects(plan, gaffer_sources=sources)
    applies = [partial(apply_object, manifest) for manifest in manifests]
    applied, listed_later = run_settled_pair(applies, listings)
    try:
        values(applied)
    except KubeError:
        _undo([result.ref for result in applied if isinstance(result, AppliedObject) and result.created])
        raise
    # The listing only finds leftovers to prune: one that failed leaves them for /poststop or the sweep.
    existing += [found for per_kind in listed_later if not isinstance(per_kind, KubeError) for found in per_kind]

    refs = [ref_of(manifest) for manifest in manifests]
    _prune(plan, existing, keep=set(refs), previous=previous)
    return ProvisionResult(reply=plan_reply(plan), objects=refs)


REDACTED = "(redacted)"


def _redacted(manifest: dict[str, Any]) -> dict[str, Any]:
    # A Gaffer store Secret holds credentials: whoever looks at a dry run sees that
    # it would be copied and under which keys, not what it holds.
    if manifest["kind"] != SECRET:
        return manifest
    return {**manifest, "data": dict.fromkeys(manifest.get("data") or {}, REDACTED)}


def provision_dry_run(plan: SpawnPlan, *, stored_files: Mapping[str, Mapping[str, str]] | None = None) -> DryRunResult:
    """What ``provision`` would apply and reply, making and deleting nothing.

    With a cluster configured, every manifest goes through the apiserver's
    server-side dry run (``dryRun=All`` on the same apply patch), so admission,
    schema and name errors show as they would on a real spawn; the Gaffer files
    to copy are read as ``provision`` reads them. With no cluster the manifests
    are only built (``checked_by`` ``"local"``), copying the graph's files from
    ``stored_files`` (ConfigMap name → files, as the sync recorded them). Secret
    values are redacted either way.
    """
    if cluster_configured():
        sources = {source.ref: source for source in read_config_sources(gaffer_source_refs(plan))}
        manifests = plan_objects(plan, gaffer_sources=sources)
        run_all([partial(apply_object, manifest, dry_run=True) for manifest in manifests])
        checked_by = "server"
    else:
        files = stored_files or {}
        # The sync never stores a Secret's contents, so a local dry run cannot name its keys.
        sources = {
            ref: ConfigSource(ref=ref, data=dict(files.get(ref.name) or {}) if ref.kind == CONFIG_MAP else {})
            for ref in gaffer_source_refs(plan)
        }
        manifests = plan_objects(plan, gaffer_sources=sources)
        checked_by = "local"
    return DryRunResult(
        reply=plan_reply(plan), manifests=[_redacted(manifest) for manifest in manifests], checked_by=checked_by
    )


def _undo(created: Sequence[ObjectRef]) -> None:
    if not created:
        return
    _, failed = delete_objects(created)
    for ref, error in failed:
        logger.warning("could not remove %s %s/%s after a failed apply: %s", ref.kind, ref.namespace, ref.name, error)


def _prune(
    plan: SpawnPlan,
    existing: Sequence[LabelledObject],
    *,
    keep: set[ObjectRef],
    previous: Sequence[ObjectRef] = (),
) -> None:
    # Failing to prune does not fail the spawn: the new set is complete, and
    # /poststop removes the leftovers with the rest.
    listed = [found.ref for found in existing if owned_by(found, plan.username, plan.server_name)]
    stale = [ref for ref in dict.fromkeys([*previous, *listed]) if ref not in keep]
    if not stale:
        return
    _, failed = delete_objects(stale)
    for ref, error in failed:
        logger.warning("could not remove stale %s %s/%s: %s", ref.kind, ref.namespace, ref.name, error)
