"""Import the original options server's configuration into the portal's models.

The migration path for an existing deployment. The original read five YAML
files from its ``conf/`` folder; the gaffer-jhub Helm chart renders them from
its values (``optionsServer.config.*`` and ``jupyterhub.singleuser.profileList``).
``import_config`` reads either the folder or the values file, in exactly the
shapes the original accepted (docs/import-config.md), so the same users get
the same choices. Every section is parsed and checked before anything is
written; the writes run in one transaction and every row passes
``full_clean()``, so a bad entry leaves the database exactly as it was.
Running it twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify

from inventory.models import (
    AccessRule,
    GafferGraph,
    GuaranteePolicy,
    HdfsInstance,
    MachineType,
    NamespaceOption,
    Profile,
    ProfileOption,
    Source,
    SparkDefault,
)

PROFILES_FILE = "profiles.yaml"
HDFS_FILE = "hdfs.yaml"
GRAPHS_FILE = "graphs.yaml"
NAMESPACES_FILE = "namespaces.yaml"
SPARK_DEFAULTS_FILE = "spark-defaults.yaml"
FILES = (PROFILES_FILE, HDFS_FILE, GRAPHS_FILE, NAMESPACES_FILE, SPARK_DEFAULTS_FILE)

# Where each file's content sits in a Helm values file: gaffer-jhub first, then plain Zero to JupyterHub.
HELM_SECTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    NAMESPACES_FILE: (("optionsServer", "config", "namespaces"),),
    HDFS_FILE: (("optionsServer", "config", "hdfs"),),
    GRAPHS_FILE: (("optionsServer", "config", "graphs"),),
    SPARK_DEFAULTS_FILE: (("optionsServer", "config", "sparkDefaults"),),
    PROFILES_FILE: (("jupyterhub", "singleuser", "profileList"), ("singleuser", "profileList")),
}

# Access rules the import owns are recognisable by name, so a re-import can update
# or remove exactly its own rules and never touch the ones operators wrote.
IMPORTED_RULE_PREFIX = "imported: "

NAMESPACES_SHAPE = (
    "a mapping with 'templated' (a list of templates such as \"user-#{username}\") and 'static' "
    "(a mapping of namespace name to a list of usernames; an empty list or null means everyone)"
)
USERS_SHAPE = "a list of usernames (absent, empty or null means everyone)"
HDFS_SHAPE = "a list of entries {id, name, namespace, namenodeClientRpcUrl, users}"
GRAPHS_SHAPE = "a list of entries {id, name, graphConfig: {description}, restApi, users}"
SPARK_SHAPE = "a mapping of Spark property to value (text, a number or true/false)"
PROFILES_SHAPE = (
    "a Zero to JupyterHub profileList: a list of entries {display_name, slug, description, default, "
    "kubespawner_override: {image, ...}, profile_options, enable_hdfs, enable_gaffer, enable_spark, spark_image, "
    "spark_ingress_host, spark_ingress_path}"
)
OPTIONS_SHAPE = (
    "a mapping of option name to {display_name, choices: {key: {display_name, default, kubespawner_override}}, "
    "unlisted_choice: {enabled, display_name, validation_regex, validation_message, kubespawner_override}}"
)

PROFILE_KEYS = {
    "display_name",
    "slug",
    "description",
    "default",
    "kubespawner_override",
    "profile_options",
    "enable_hdfs",
    "enable_gaffer",
    "enable_spark",
    "spark_image",
    "spark_ingress_host",
    "spark_ingress_path",
}
OPTION_KEYS = {"display_name", "choices", "unlisted_choice"}
CHOICE_KEYS = {"display_name", "default", "kubespawner_override"}
# ``validation_regex_error`` is read as another name for KubeSpawner's ``validation_message``.
UNLISTED_KEYS = {
    "enabled",
    "display_name",
    "validation_regex",
    "validation_message",
    "validation_regex_error",
    "kubespawner_override",
}
# KubeSpawner traits of a profile that say where it runs and what it is given: they become
# the profile's machine type, so capacity and the access rules see them.
COMPUTE_TRAITS = (
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee",
    "mem_limit",
    "node_selector",
    "tolerations",
    "extra_resource_limits",
    "extra_resource_guarantees",
)
# KubeSpawner's ByteSpecification: K, M, G, T are powers of 1024 (Ki, Mi, Gi, Ti too).
_BYTES = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT])?i?$")
_BYTE_UNITS = {None: 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
HDFS_KEYS = {"id", "name", "namespace", "namenodeClientRpcUrl", "users"}
GRAPH_KEYS = {"id", "name", "graphConfig", "restApi", "users"}

# A Pug text interpolation: #{expr} (escaped) or !{expr} (raw); the original's only variable was the username.
_PUG_INTERPOLATION = re.compile(r"[#!]\{([^}]*)\}")

# Said in every report: where the portal is deliberately stricter than (or fixes) the original.
DIFFERENCES = (
    "/options and /prespawn answer only the hub's API token; the original answered anyone.",
    "a choice is checked again at /prespawn with the same rules as the form, and refused with a 4xx naming it.",
    "in a templated namespace, a username that is not a DNS label is replaced by its DNS-safe form "
    "(the original built a name that cannot exist).",
    "a static graph's restApi sets GAFFER_REST_API_URL (the original read restApi.url and so set none).",
    "namespaces are offered in the order of their options (alphabetical by pattern after import), "
    "not sorted once the username is filled in.",
)


class ConfigImportError(Exception):
    """A file or one of its entries cannot be imported; names both and says why."""

    def __init__(self, file: str, reason: str, entry: str | None = None) -> None:
        self.file = file
        self.entry = entry
        self.reason = reason
        where = f"{file}, entry {entry}" if entry else file
        super().__init__(f"{where}: {reason}")


@dataclass
class ModelCounts:
    """What the import did to one model."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def __str__(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        return text + (f", {self.deleted} deleted" if self.deleted else "")


@dataclass
class ImportReport:
    """Per model counts, sections read or not found, warnings and notes."""

    counts: dict[str, ModelCounts] = field(default_factory=dict)
    files_read: list[str] = field(default_factory=list)
    files_missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def of(self, model: type[models.Model]) -> ModelCounts:
        name = str(model._meta.verbose_name)
        return self.counts.setdefault(name[:1].upper() + name[1:], ModelCounts())

    @property
    def created(self) -> int:
        return sum(c.created for c in self.counts.values())

    @property
    def updated(self) -> int:
        return sum(c.updated for c in self.counts.values())

    @property
    def deleted(self) -> int:
        return sum(c.deleted for c in self.counts.values())

    def lines(self) -> list[str]:
        lines = [f"Read {name}" for name in self.files_read]
        lines += [f"Skipped {name}: not found" for name in self.files_missing]
        lines += [f"Warning: {warning}" for warning in self.warnings]
        lines += [f"Note: {note}" for note in self.notes]
        lines += [f"Stricter than the original: {difference}" for difference in DIFFERENCES]
        lines += [f"{name}: {counts}" for name, counts in self.counts.items()]
        total = f"Total: {self.created} created, {self.updated} updated"
        if self.deleted:
            total += f", {self.deleted} deleted"
        lines.append(total + (" (dry run: nothing saved)" if self.dry_run else ""))
        return lines


# --- Parsed entries ---------------------------------------------------------


@dataclass(frozen=True)
class ProfileEntry:
    where: str
    values: dict[str, Any]
    # The MachineType the profile's compute traits become (None: it has none).
    machine_type: dict[str, Any] | None = None
    # ProfileOption values, one per profile_options entry, in the file's order.
    options: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class StaticEntry:
    """One entry of hdfs.yaml or graphs.yaml."""

    where: str
    key: str
    namespace: str
    name: str
    display_name: str
    url: str
    description: str
    users: tuple[str, ...]


@dataclass(frozen=True)
class NamespaceEntry:
    where: str
    pattern: str
    users: tuple[str, ...]


@dataclass(frozen=True)
class SparkEntry:
    where: str
    key: str
    value: str


@dataclass
class ParsedConfig:
    """Everything read, checked for shape, not yet written; None for a section not given."""

    profiles: list[ProfileEntry] | None = None
    hdfs: list[StaticEntry] | None = None
    graphs: list[StaticEntry] | None = None
    namespaces: list[NamespaceEntry] | None = None
    spark_defaults: list[SparkEntry] | None = None
    # Section → how messages name it (the file, or the values file and its key path).
    labels: dict[str, str] = field(default_factory=dict)


# --- Reading ----------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigImportError(path.name, f"cannot be read: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigImportError(path.name, f"not valid YAML: {problem}{position}") from exc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _where(index: int, ident: Any) -> str:
    return f"{index} ({ident})" if isinstance(ident, str | int) and str(ident) else str(index)


def _list(file: str, data: Any, shape: str) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigImportError(file, f"is {_kind(data)}; expected {shape}")
    return data


def _text(file: str, where: str, entry: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigImportError(file, f"'{key}' is required (text)", where)
        return ""
    if not isinstance(value, str):
        raise ConfigImportError(file, f"'{key}' is {_kind(value)}; expected text", where)
    text = value.strip()
    if required and not text:
        raise ConfigImportError(file, f"'{key}' must not be empty", where)
    return text


def _flag(file: str, where: str, entry: dict[str, Any], key: str) -> bool:
    value = entry.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigImportError(file, f"'{key}' is {_kind(value)}; expected true or false", where)
    return value


def _users(file: str, where: str, value: Any, what: str = "'users'") -> tuple[str, ...]:
    """A user list as the original read it: absent, null or empty means everyone."""
    if value is None:
        return ()
    # The original compared with ``users.includes(username)``: a text would match substrings
    # and a number no username at all, so neither is a list it meant.
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigImportError(file, f"{what} is {_kind(value)}; expected {USERS_SHAPE}", where)
    return tuple(dict.fromkeys(v.strip() for v in value if v.strip()))


def _warn_unknown(report: ImportReport, file: str, where: str, entry: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(str(key) for key in set(entry) - known)
    if unknown:
        report.warnings.append(f"{file}, entry {where}: not mapped, ignored: {', '.join(unknown)}")


def parse_namespaces(file: str, data: Any, report: ImportReport) -> list[NamespaceEntry]:
    if not isinstance(data, dict):
        raise ConfigImportError(file, f"is {_kind(data)}; expected {NAMESPACES_SHAPE}")
    for key in ("templated", "static"):
        if key not in data:
            # The original stopped at start-up without it.
            raise ConfigImportError(file, f"has no '{key}'; expected {NAMESPACES_SHAPE}")
    unknown = sorted(str(key) for key in data if key not in ("templated", "static"))
    if unknown:
        report.warnings.append(f"{file}: not mapped, ignored (as the original did): {', '.join(unknown)}")

    # pattern → users; () means everyone. Templated ones are everyone's.
    patterns: dict[str, tuple[str, ...]] = {}
    wheres: dict[str, str] = {}
    templated = data["templated"] if data["templated"] is not None else []
    if not isinstance(templated, list):
        raise ConfigImportError(file, f"'templated' is {_kind(templated)}; expected {NAMESPACES_SHAPE}")
    for index, template in enumerate(templated, start=1):
        where = f"templated {_where(index, template)}"
        if not isinstance(template, str) or not template.strip():
            raise ConfigImportError(
                file, f'is {_kind(template)}; expected a template such as "user-#{{username}}"', where
            )
        pattern = _pattern(file, where, template.strip())
        patterns[pattern] = ()
        wheres[pattern] = where
    static = data["static"] if data["static"] is not None else {}
    if not isinstance(static, dict):
        raise ConfigImportError(file, f"'static' is {_kind(static)}; expected {NAMESPACES_SHAPE}")
    for index, (name, users) in enumerate(static.items(), start=1):
        where = f"static {_where(index, name)}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigImportError(file, f"the namespace name is {_kind(name)}; expected text", where)
        allowed = _users(file, where, users, what="the user list")
        name = name.strip()
        if name in patterns:
            # Also templated, so every user has it already.
            continue
        patterns[name] = allowed
        wheres[name] = where
    # The original sorted a user's namespaces by name.
    return [NamespaceEntry(where=wheres[p], pattern=p, users=patterns[p]) for p in sorted(patterns)]


def _pattern(file: str, where: str, template: str) -> str:
    """A Pug text template over ``username`` → the portal's ``{username}`` pattern."""
    if "#[" in template or "\\" in template:
        raise ConfigImportError(
            file, "tag interpolation and escapes are not supported; expected text with #{username}", where
        )
    for match in _PUG_INTERPOLATION.finditer(template):
        if match.group(1).strip() != "username":
            raise ConfigImportError(
                file, f"'{match.group(0)}' uses more than the username; expected text with #{{username}}", where
            )
    return _PUG_INTERPOLATION.sub("{username}", template)


def _static_common(file: str, index: int, entry: Any, shape: str) -> tuple[str, str, str]:
    if not isinstance(entry, dict):
        raise ConfigImportError(file, f"is {_kind(entry)}; expected {shape}", str(index))
    where = _where(index, entry.get("id"))
    key = _text(file, where, entry, "id", required=True)
    return where, key, _text(file, where, entry, "name")


def parse_hdfs(file: str, data: Any, report: ImportReport) -> list[StaticEntry]:
    parsed: list[StaticEntry] = []
    for index, entry in enumerate(_list(file, data, HDFS_SHAPE), start=1):
        where, key, name = _static_common(file, index, entry, HDFS_SHAPE)
        id_namespace, _, id_name = key.rpartition(":")
        _warn_unknown(report, file, where, entry, HDFS_KEYS)
        parsed.append(
            StaticEntry(
                where=where,
                key=key,
                namespace=_text(file, where, entry, "namespace") or id_namespace,
                name=id_name,
                display_name=name if name != key else "",
                url=_text(file, where, entry, "namenodeClientRpcUrl"),
                description="",
                users=_users(file, where, entry.get("users")),
            )
        )
    return _unique(file, parsed)


def parse_graphs(file: str, data: Any, report: ImportReport) -> list[StaticEntry]:
    parsed: list[StaticEntry] = []
    for index, entry in enumerate(_list(file, data, GRAPHS_SHAPE), start=1):
        where, key, name = _static_common(file, index, entry, GRAPHS_SHAPE)
        graph_config = entry.get("graphConfig")
        if graph_config is None:
            graph_config = {}
        if not isinstance(graph_config, dict):
            raise ConfigImportError(file, f"'graphConfig' is {_kind(graph_config)}; expected {{description}}", where)
        description = _text(file, where, graph_config, "description")
        rest_api = entry.get("restApi")
        if isinstance(rest_api, dict):
            # The original read ``restApi.url``: a file written to make that work has this shape.
            rest_api = rest_api.get("url")
        if rest_api is not None and not isinstance(rest_api, str):
            raise ConfigImportError(file, f"'restApi' is {_kind(rest_api)}; expected a URL or null", where)
        id_namespace, _, id_name = key.rpartition(":")
        _warn_unknown(report, file, where, entry, GRAPH_KEYS)
        parsed.append(
            StaticEntry(
                where=where,
                key=key,
                namespace=id_namespace,
                name=id_name,
                display_name=name if name != key else "",
                url=(rest_api or "").strip(),
                description=description,
                users=_users(file, where, entry.get("users")),
            )
        )
    return _unique(file, parsed)


def _unique(file: str, entries: list[StaticEntry]) -> list[StaticEntry]:
    seen: set[str] = set()
    for entry in entries:
        if entry.key in seen:
            raise ConfigImportError(file, f"id '{entry.key}' is listed twice", entry.where)
        seen.add(entry.key)
    return entries


def parse_spark_defaults(file: str, data: Any) -> list[SparkEntry]:
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigImportError(file, f"is {_kind(data)}; expected {SPARK_SHAPE}")
    parsed = []
    for key, value in data.items():
        where = f"'{key}'"
        if not isinstance(key, str):
            raise ConfigImportError(file, f"the property name is {_kind(key)}; expected text", where)
        if isinstance(value, bool):
            # As JavaScript wrote them into spark-defaults.conf.
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise ConfigImportError(file, f"the value is {_kind(value)}; expected text, a number or true/false", where)
        # Keys as written: the chart's own default has a stray quote in spark.serializer'.
        parsed.append(SparkEntry(where=where, key=key, value=text))
    return parsed


def parse_profiles(file: str, data: Any, report: ImportReport, *, default_image: str = "") -> list[ProfileEntry]:
    parsed: list[ProfileEntry] = []
    slugs: set[str] = set()
    default_where = None
    for index, entry in enumerate(_list(file, data, PROFILES_SHAPE), start=1):
        if not isinstance(entry, dict):
            raise ConfigImportError(file, f"is {_kind(entry)}; expected {PROFILES_SHAPE}", str(index))
        where = _where(index, entry.get("slug") or entry.get("display_name"))
        display_name = _text(file, where, entry, "display_name", required=True)
        # Zero to JupyterHub makes the slug from the display name when none is given.
        slug = _text(file, where, entry, "slug") or slugify(display_name)
        where = _where(index, slug)
        if not slug:
            raise ConfigImportError(file, "no slug, and none can be made from display_name", where)
        if slug in slugs:
            raise ConfigImportError(file, f"slug '{slug}' is used twice", where)
        slugs.add(slug)
        override = entry.get("kubespawner_override")
        if override is None:
            override = {}
        if not isinstance(override, dict):
            raise ConfigImportError(
                file, f"'kubespawner_override' is {_kind(override)}; expected a mapping of KubeSpawner traits", where
            )
        override = dict(override)
        image = override.pop("image", None)
        if image is None and default_image:
            # Zero to JupyterHub's profiles without an image run singleuser.image.
            image = default_image
        if not isinstance(image, str) or not image.strip():
            raise ConfigImportError(
                file, "'kubespawner_override.image' is required: every portal profile names its image", where
            )
        machine_type = _machine_type(file, where, slug, display_name, override, report)
        options = _profile_options(file, where, entry.get("profile_options"), report)
        default = _flag(file, where, entry, "default")
        if default and default_where:
            raise ConfigImportError(file, f"a second default profile (entry {default_where} is one)", where)
        if default:
            default_where = where
        _warn_unknown(report, file, where, entry, PROFILE_KEYS)
        parsed.append(
            ProfileEntry(
                where=where,
                values={
                    "slug": slug,
                    "display_name": display_name,
                    "description": _text(file, where, entry, "description"),
                    "image": image.strip(),
                    "default": default,
                    "order": index * 10,
                    "enabled": True,
                    "enable_hdfs": _flag(file, where, entry, "enable_hdfs"),
                    "enable_gaffer": _flag(file, where, entry, "enable_gaffer"),
                    "enable_spark": _flag(file, where, entry, "enable_spark"),
                    "spark_image": _text(file, where, entry, "spark_image"),
                    "spark_ingress_host": _text(file, where, entry, "spark_ingress_host"),
                    "spark_ingress_path": _text(file, where, entry, "spark_ingress_path"),
                    "kubespawner_override": override,
                },
                machine_type=machine_type,
                options=options,
            )
        )
    return parsed


def _machine_type(
    file: str, where: str, slug: str, display_name: str, override: dict[str, Any], report: ImportReport
) -> dict[str, Any] | None:
    """Take the compute traits out of a profile's overrides and make its machine type's values of them."""
    compute = {key: override.pop(key) for key in COMPUTE_TRAITS if key in override}
    if not compute:
        return None
    values: dict[str, Any] = {
        "slug": slug,
        "display_name": display_name,
        "node_selector": compute.get("node_selector") or {},
        "tolerations": compute.get("tolerations") or [],
        "extended_resources": {},
        "max_cpu": None,
        "max_mem": None,
        "guarantee_policy": GuaranteePolicy.EQUAL,
        "cpu_guarantee": None,
        "mem_guarantee": None,
    }
    counts: dict[str, set[int]] = {}
    for key in ("extra_resource_limits", "extra_resource_guarantees"):
        resources = compute.get(key) or {}
        if not isinstance(resources, dict):
            raise ConfigImportError(
                file, f"'kubespawner_override.{key}' is {_kind(resources)}; expected resource name: count", where
            )
        for name, amount in resources.items():
            counts.setdefault(str(name), set()).add(_whole(file, where, f"kubespawner_override.{key}.{name}", amount))
    for name, found in counts.items():
        if len(found) > 1:
            # Kubernetes refuses an extended resource whose request and limit differ.
            raise ConfigImportError(
                file, f"'{name}': extra_resource_limits and extra_resource_guarantees differ", where
            )
        values["extended_resources"][name] = sorted(found)
    if "cpu_limit" in compute:
        values["max_cpu"] = _cpu(file, where, "cpu_limit", compute["cpu_limit"])
    if "mem_limit" in compute:
        values["max_mem"] = _megabytes(file, where, "mem_limit", compute["mem_limit"], report)
    if "cpu_guarantee" in compute or "mem_guarantee" in compute:
        values["guarantee_policy"] = GuaranteePolicy.EXPLICIT
        if "cpu_guarantee" in compute:
            values["cpu_guarantee"] = _cpu(file, where, "cpu_guarantee", compute["cpu_guarantee"])
        if "mem_guarantee" in compute:
            values["mem_guarantee"] = _megabytes(file, where, "mem_guarantee", compute["mem_guarantee"], report)
    report.notes.append(
        f"{file}, entry {where}: {', '.join(compute)} became the machine type '{slug}' "
        "(limits are its maximum, guarantees its fixed guarantee); the profile runs only on it"
    )
    return values


def _whole(file: str, where: str, key: str, value: Any) -> int:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise ConfigImportError(file, f"'{key}' is {value!r}; expected a whole number of devices", where)
    return int(text)


def _cpu(file: str, where: str, key: str, value: Any) -> Decimal:
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        cpu = Decimal(str(value))
    except InvalidOperation:
        cpu = Decimal("NaN")
    if not cpu.is_finite() or cpu <= 0:
        raise ConfigImportError(file, f"'kubespawner_override.{key}' is {value!r}; expected a number of CPUs", where)
    return cpu.quantize(Decimal("0.01"))


def _megabytes(file: str, where: str, key: str, value: Any, report: ImportReport) -> int:
    """A KubeSpawner memory size (bytes, or K/M/G/T in powers of 1024) in the portal's MB (2**20 bytes)."""
    match = _BYTES.match(str(value).strip()) if isinstance(value, str | int | float) else None
    if match is None or isinstance(value, bool):
        raise ConfigImportError(
            file, f"'kubespawner_override.{key}' is {value!r}; expected a size such as 4G or 512M", where
        )
    size = Decimal(match.group(1)) * _BYTE_UNITS[match.group(2)]
    megabytes = size / 2**20
    if megabytes != megabytes.to_integral_value():
        report.warnings.append(f"{file}, entry {where}: {key} {value} rounded down to whole MB")
    if megabytes < 1:
        raise ConfigImportError(file, f"'kubespawner_override.{key}' is {value!r}; below 1 MB", where)
    return int(megabytes)


def _profile_options(file: str, where: str, data: Any, report: ImportReport) -> tuple[dict[str, Any], ...]:
    """``profile_options`` in KubeSpawner's shape → ProfileOption values."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigImportError(file, f"'profile_options' is {_kind(data)}; expected {OPTIONS_SHAPE}", where)
    options: list[dict[str, Any]] = []
    for order, (name, option) in enumerate(data.items(), start=1):
        at = f"{where}, profile_options.{name}"
        if not isinstance(option, dict):
            raise ConfigImportError(file, f"is {_kind(option)}; expected {OPTIONS_SHAPE}", at)
        _warn_unknown(report, file, at, option, OPTION_KEYS)
        choices_in = option.get("choices") or {}
        if not isinstance(choices_in, dict):
            raise ConfigImportError(file, f"'choices' is {_kind(choices_in)}; expected a mapping of key to choice", at)
        choices = []
        for key, choice in choices_in.items():
            if not isinstance(choice, dict):
                raise ConfigImportError(file, f"choice '{key}' is {_kind(choice)}; expected {OPTIONS_SHAPE}", at)
            _warn_unknown(report, file, f"{at}.choices.{key}", choice, CHOICE_KEYS)
            choices.append(
                {
                    "key": str(key),
                    "display_name": _text(file, at, choice, "display_name") or str(key),
                    "default": _flag(file, at, choice, "default"),
                    "kubespawner_override": _override(file, at, choice.get("kubespawner_override")),
                }
            )
        unlisted = option.get("unlisted_choice") or {}
        if not isinstance(unlisted, dict):
            raise ConfigImportError(file, f"'unlisted_choice' is {_kind(unlisted)}; expected {OPTIONS_SHAPE}", at)
        _warn_unknown(report, file, f"{at}.unlisted_choice", unlisted, UNLISTED_KEYS)
        enabled = _flag(file, at, unlisted, "enabled")
        message = _text(file, at, unlisted, "validation_message") or _text(file, at, unlisted, "validation_regex_error")
        options.append(
            {
                "slug": str(name),
                "display_name": _text(file, at, option, "display_name") or str(name),
                "order": order * 10,
                "choices": choices,
                "unlisted_enabled": enabled,
                "unlisted_display_name": _text(file, at, unlisted, "display_name") if enabled else "",
                "unlisted_validation_regex": _text(file, at, unlisted, "validation_regex") if enabled else "",
                "unlisted_validation_message": message if enabled else "",
                "unlisted_kubespawner_override": (
                    _override(file, at, unlisted.get("kubespawner_override")) if enabled else {}
                ),
            }
        )
    return tuple(options)


def _override(file: str, where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigImportError(
            file, f"'kubespawner_override' is {_kind(value)}; expected a mapping of KubeSpawner traits", where
        )
    return dict(value)


def _parse_section(
    parsed: ParsedConfig, section: str, label: str, data: Any, report: ImportReport, *, default_image: str = ""
) -> None:
    parsed.labels[section] = label
    if section == PROFILES_FILE:
        parsed.profiles = parse_profiles(label, data, report, default_image=default_image)
    elif section == HDFS_FILE:
        parsed.hdfs = parse_hdfs(label, data, report)
    elif section == GRAPHS_FILE:
        parsed.graphs = parse_graphs(label, data, report)
    elif section == NAMESPACES_FILE:
        parsed.namespaces = parse_namespaces(label, data, report)
    else:
        parsed.spark_defaults = parse_spark_defaults(label, data)


def config_parse(*, directory: Path, report: ImportReport) -> ParsedConfig:
    """Read and check the shape of every file present in ``directory`` (the original's conf/)."""
    if not directory.is_dir():
        raise ConfigImportError(str(directory), "is not a folder")
    parsed = ParsedConfig()
    for name in FILES:
        path = directory / name
        if not path.exists() and path.with_suffix(".yml").exists():
            path = path.with_suffix(".yml")
        if not path.exists():
            report.files_missing.append(name)
            continue
        data = _load_yaml(path)
        report.files_read.append(path.name)
        _parse_section(parsed, name, path.name, data, report)
    if not report.files_read:
        raise ConfigImportError(str(directory), f"holds none of {', '.join(FILES)}")
    return parsed


def helm_values_parse(*, path: Path, report: ImportReport) -> ParsedConfig:
    """Read the sections of a gaffer-jhub (or plain Zero to JupyterHub) Helm values file."""
    if not path.is_file():
        raise ConfigImportError(str(path), "is not a file")
    values = _load_yaml(path)
    if not isinstance(values, dict):
        raise ConfigImportError(path.name, f"is {_kind(values)}; expected a Helm values mapping")
    parsed = ParsedConfig()
    for section, candidates in HELM_SECTIONS.items():
        found = None
        for keys in candidates:
            node: Any = values
            for depth, key in enumerate(keys):
                if not isinstance(node, dict) or key not in node:
                    node = _ABSENT
                    break
                if depth < len(keys) - 1 and node[key] is not None and not isinstance(node[key], dict):
                    raise ConfigImportError(
                        path.name, f"'{'.'.join(keys[: depth + 1])}' is {_kind(node[key])}; expected a mapping"
                    )
                node = node[key]
            if node is not _ABSENT:
                found = (keys, node)
                break
        if found is None:
            report.files_missing.append(f"{' or '.join('.'.join(k) for k in candidates)} (for {section})")
            continue
        keys, data = found
        dotted = ".".join(keys)
        report.files_read.append(f"{path.name}: {dotted} (the original's {section})")
        singleuser = _at(values, keys[:-1]) if section == PROFILES_FILE else None
        _parse_section(
            parsed, section, f"{path.name} ({dotted})", data, report, default_image=_singleuser_image(singleuser)
        )
    if not report.files_read:
        wanted = ", ".join(".".join(keys) for candidates in HELM_SECTIONS.values() for keys in candidates)
        raise ConfigImportError(path.name, f"has none of the sections {wanted}")
    if parsed.profiles is not None and "jupyterhub" not in values and "optionsServer" not in values:
        report.notes.append(
            "a plain Zero to JupyterHub values file: only its profileList is imported; "
            "namespaces, HDFS instances, graphs and Spark defaults come from sync_cluster and the admin."
        )
    return parsed


_ABSENT = object()


def _at(values: dict[str, Any], keys: tuple[str, ...]) -> Any:
    node: Any = values
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _singleuser_image(singleuser: Any) -> str:
    """``singleuser.image`` as name:tag, the image of a profile that names none."""
    image = singleuser.get("image") if isinstance(singleuser, dict) else None
    if not isinstance(image, dict) or not isinstance(image.get("name"), str) or not image["name"].strip():
        return ""
    tag = image.get("tag")
    return f"{image['name'].strip()}:{tag}" if isinstance(tag, str | int | float) and str(tag).strip() else ""


# --- Writing ----------------------------------------------------------------


def _reason(error: ValidationError, renames: dict[str, str]) -> str:
    if not hasattr(error, "error_dict"):
        return "; ".join(error.messages)
    parts = []
    for field_name, field_errors in error.message_dict.items():
        label = renames.get(field_name, field_name)
        text = " ".join(field_errors)
        parts.append(text if field_name == "__all__" else f"{label}: {text}")
    return "; ".join(parts)


def _save(
    obj: models.Model,
    values: dict[str, Any],
    *,
    counts: ModelCounts,
    file: str,
    where: str,
    renames: dict[str, str] | None = None,
) -> bool:
    """Apply ``values`` to ``obj``; validate and save only if something changed."""
    adding = obj._state.adding
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if not adding and not changed:
        counts.unchanged += 1
        return False
    for name in changed:
        setattr(obj, name, values[name])
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise ConfigImportError(file, _reason(exc, renames or {}), where) from exc
    obj.save()
    if adding:
        counts.created += 1
    else:
        counts.updated += 1
    return True


def _apply_profiles(file: str, entries: list[ProfileEntry], report: ImportReport) -> None:
    counts = report.of(Profile)
    renames = {"image": "kubespawner_override.image"}
    defaults = [e.values["slug"] for e in entries if e.values["default"]]
    if defaults:
        # The file names the default: any other default profile steps down first,
        # or the one-default rule would refuse the imported one.
        for other in Profile.objects.filter(default=True).exclude(slug=defaults[0]):
            _save(other, {"default": False}, counts=counts, file=file, where=f"(existing '{other.slug}')")
    for entry in entries:
        profile = Profile.objects.filter(slug=entry.values["slug"]).first() or Profile(slug=entry.values["slug"])
        saved = _save(profile, entry.values, counts=counts, file=file, where=entry.where, renames=renames)
        if entry.machine_type is not None:
            machine_type = _apply_machine_type(file, entry, report)
            if set(profile.machine_types.values_list("pk", flat=True)) != {machine_type.pk}:
                profile.machine_types.set([machine_type])
                if not saved:
                    counts.unchanged -= 1
                    counts.updated += 1
        _apply_profile_options(file, entry, profile, report)


def _apply_machine_type(file: str, entry: ProfileEntry, report: ImportReport) -> MachineType:
    assert entry.machine_type is not None
    values = entry.machine_type
    row = MachineType.objects.filter(slug=values["slug"]).first() or MachineType(slug=values["slug"])
    if not row._state.adding:
        # An operator may have renamed or reordered it; the import owns only what the file says.
        values = {k: v for k, v in values.items() if k not in ("display_name",)}
    renames = {"max_cpu": "cpu_limit", "max_mem": "mem_limit", "extended_resources": "extra_resource_limits"}
    _save(row, values, counts=report.of(MachineType), file=file, where=entry.where, renames=renames)
    return row


def _apply_profile_options(file: str, entry: ProfileEntry, profile: Profile, report: ImportReport) -> None:
    counts = report.of(ProfileOption)
    renames = {
        "choices": "choices",
        "slug": "option name",
        "unlisted_validation_regex": "unlisted_choice.validation_regex",
        "unlisted_kubespawner_override": "unlisted_choice.kubespawner_override",
    }
    for values in entry.options:
        where = f"{entry.where}, profile_options.{values['slug']}"
        row = ProfileOption.objects.filter(profile=profile, slug=values["slug"]).first() or ProfileOption(
            profile=profile, slug=values["slug"]
        )
        _save(row, values, counts=counts, file=file, where=where, renames=renames)


def _apply_static(
    file: str, model: type[HdfsInstance] | type[GafferGraph], entries: list[StaticEntry], report: ImportReport
) -> list[tuple[StaticEntry, HdfsInstance | GafferGraph]]:
    """One row per entry: the discovered instance it restricts, or a row that stands for the entry."""
    counts = report.of(model)
    is_hdfs = model is HdfsInstance
    url_field = "namenodeClientRpcUrl" if is_hdfs else "restApi"
    renames = {"static_url": url_field, "static_description": "graphConfig.description"}
    now = timezone.now()
    applied: list[tuple[StaticEntry, HdfsInstance | GafferGraph]] = []
    for entry in entries:
        row = model.objects.filter(key=entry.key).first()
        if row is not None and row.source == Source.MANUAL:
            report.warnings.append(
                f"{file}, entry {entry.where}: an operator added '{entry.key}' by hand; only its users were imported"
            )
            applied.append((entry, row))
            continue
        values: dict[str, Any] = {"static_entry": True, "static_url": entry.url}
        if not is_hdfs:
            values["static_description"] = entry.description
        if row is None:
            # Not (yet) in the cluster: a row that sync_cluster takes over once it finds the
            # instance, and that is offered as this entry while it does not (see StaticEntry).
            row = model(
                key=entry.key,
                source=Source.DISCOVERED,
                namespace=entry.namespace,
                name=entry.name,
                display_name=entry.display_name,
                missing_since=now,
            )
        _save(row, values, counts=counts, file=file, where=entry.where, renames=renames)
        if is_hdfs and not entry.url and not row.in_cluster:
            report.notes.append(
                f"{file}, entry {entry.where}: no namenodeClientRpcUrl and not in the cluster: offered once "
                "sync_cluster discovers it, as in the original"
            )
        applied.append((entry, row))
    return applied


def _apply_restrictions(
    file: str,
    kind: str,
    relation: str,
    applied: Iterable[tuple[StaticEntry, models.Model]],
    report: ImportReport,
) -> None:
    """One access rule per entry with users, so exactly the listed users may use it."""
    counts = report.of(AccessRule)
    for entry, row in applied:
        rule_name = f"{IMPORTED_RULE_PREFIX}{kind} {entry.key}"
        rule = AccessRule.objects.filter(name=rule_name).first()
        if not entry.users:
            # Open to everyone in the file: the import's own rule goes.
            if rule is not None:
                rule.delete()
                counts.deleted += 1
            continue
        values = {"everyone": False, "users": list(entry.users), "groups": []}
        saved = _save(rule or AccessRule(name=rule_name), values, counts=counts, file=file, where=entry.where)
        rule = AccessRule.objects.get(name=rule_name)
        related = getattr(rule, relation)
        if set(related.values_list("pk", flat=True)) != {row.pk}:
            related.set([row])
            if not saved:
                counts.unchanged -= 1
                counts.updated += 1


def _apply_namespaces(file: str, entries: list[NamespaceEntry], report: ImportReport) -> None:
    counts = report.of(NamespaceOption)
    for order, entry in enumerate(entries, start=1):
        option = NamespaceOption.objects.filter(pattern=entry.pattern).first() or NamespaceOption(pattern=entry.pattern)
        values = {"users": list(entry.users), "order": order * 10}
        if option._state.adding:
            values["pattern"] = entry.pattern
        _save(option, values, counts=counts, file=file, where=entry.where, renames={"pattern": "name"})


def _apply_spark_defaults(file: str, entries: list[SparkEntry], report: ImportReport) -> None:
    counts = report.of(SparkDefault)
    for order, entry in enumerate(entries, start=1):
        row = SparkDefault.objects.filter(key=entry.key).first() or SparkDefault(key=entry.key)
        _save(row, {"value": entry.value, "order": order * 10}, counts=counts, file=file, where=entry.where)


def _apply(parsed: ParsedConfig, report: ImportReport) -> None:
    labels = parsed.labels
    if parsed.profiles is not None:
        _apply_profiles(labels[PROFILES_FILE], parsed.profiles, report)
    if parsed.hdfs is not None:
        applied = _apply_static(labels[HDFS_FILE], HdfsInstance, parsed.hdfs, report)
        _apply_restrictions(labels[HDFS_FILE], "hdfs", "hdfs_instances", applied, report)
    if parsed.graphs is not None:
        applied = _apply_static(labels[GRAPHS_FILE], GafferGraph, parsed.graphs, report)
        _apply_restrictions(labels[GRAPHS_FILE], "graph", "gaffer_graphs", applied, report)
    if parsed.namespaces is not None:
        _apply_namespaces(labels[NAMESPACES_FILE], parsed.namespaces, report)
    if parsed.spark_defaults is not None:
        _apply_spark_defaults(labels[SPARK_DEFAULTS_FILE], parsed.spark_defaults, report)


def config_import(
    *, directory: Path | None = None, helm_values: Path | None = None, dry_run: bool = False
) -> ImportReport:
    """Import the original's conf/ folder or a Helm values file; all or nothing.

    Raises ConfigImportError naming the file, the entry and the expected shape.
    """
    report = ImportReport(dry_run=dry_run)
    if helm_values is not None:
        parsed = helm_values_parse(path=helm_values, report=report)
    elif directory is not None:
        parsed = config_parse(directory=directory, report=report)
    else:
        raise ConfigImportError("import_config", "give a folder or --helm-values FILE")
    with transaction.atomic():
        _apply(parsed, report)
        if dry_run:
            transaction.set_rollback(True)
    return report
