"""Import the original options server's YAML configuration into the portal's models.

The migration path for an existing deployment: point ``import_config`` at the
folder holding the original's ``conf/`` files and the same users get the same
choices. Every file is parsed and checked before anything is written; the writes
run in one transaction and every row passes ``full_clean()``, so a bad entry
leaves the database exactly as it was. Running it twice changes nothing.

The file shapes are documented in docs/import-config.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.text import slugify

from inventory.models import (
    AccessRule,
    GafferGraph,
    HdfsInstance,
    NamespaceOption,
    Profile,
    Source,
    SparkDefault,
)

PROFILES_FILE = "profiles.yaml"
HDFS_FILE = "hdfs.yaml"
GRAPHS_FILE = "graphs.yaml"
NAMESPACES_FILE = "namespaces.yaml"
SPARK_DEFAULTS_FILE = "spark-defaults.yaml"
FILES = (PROFILES_FILE, HDFS_FILE, GRAPHS_FILE, NAMESPACES_FILE, SPARK_DEFAULTS_FILE)

# Access rules the import owns are recognisable by name, so a re-import can update
# or remove exactly its own rules and never touch the ones operators wrote.
IMPORTED_RULE_PREFIX = "imported: "

# Keys of a Zero to JupyterHub profileList entry the portal has no use for.
PROFILE_KEYS = {
    "display_name",
    "slug",
    "description",
    "default",
    "kubespawner_override",
    "enable_hdfs",
    "enable_gaffer",
    "enable_spark",
    "spark_image",
    "spark_ingress_host",
    "spark_ingress_path",
}
INSTANCE_KEYS = {"id", "namespace", "name", "url", "display_name", "description", "users", "groups"}
NAMESPACE_KEYS = {"name", "description", "users", "groups"}


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
    """Per model counts, files read or skipped, and keys that were ignored."""

    counts: dict[str, ModelCounts] = field(default_factory=dict)
    files_read: list[str] = field(default_factory=list)
    files_missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
        lines += [f"{name}: {counts}" for name, counts in self.counts.items()]
        total = f"Total: {self.created} created, {self.updated} updated"
        if self.deleted:
            total += f", {self.deleted} deleted"
        lines.append(total + (" (dry run: nothing saved)" if self.dry_run else ""))
        return lines


# --- Parsed entries ---------------------------------------------------------


@dataclass(frozen=True)
class Restriction:
    """The users (and, beyond the original, groups) a static entry was limited to."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


@dataclass(frozen=True)
class ProfileEntry:
    where: str
    values: dict[str, Any]


@dataclass(frozen=True)
class InstanceEntry:
    """A static HDFS instance or Gaffer graph."""

    where: str
    key: str
    namespace: str
    name: str
    url: str
    display_name: str
    description: str
    restriction: Restriction


@dataclass(frozen=True)
class NamespaceEntry:
    where: str
    values: dict[str, Any]


@dataclass(frozen=True)
class SparkEntry:
    where: str
    key: str
    value: str


@dataclass
class ParsedConfig:
    """Everything read from the folder, checked for shape, not yet written."""

    profiles: list[ProfileEntry] | None = None
    hdfs: list[InstanceEntry] | None = None
    graphs: list[InstanceEntry] | None = None
    namespaces: list[NamespaceEntry] | None = None
    spark_defaults: list[SparkEntry] | None = None


# --- Reading files ----------------------------------------------------------


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


def _entries(file: str, data: Any, *, keyed_by: str, nested: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """A list of entries, or a mapping of id → entry, as ``(label, entry)`` pairs.

    ``nested`` names mapping keys the list may sit under (a Helm values file has
    ``singleuser: profileList: [...]``).
    """
    if data is None:
        return []
    for key in nested:
        if isinstance(data, dict) and key in data:
            return _entries(file, data[key], keyed_by=keyed_by, nested=nested)
    if isinstance(data, list):
        return [(str(index), entry) for index, entry in enumerate(data, start=1)]
    if isinstance(data, dict):
        pairs = []
        for index, (key, entry) in enumerate(data.items(), start=1):
            if entry is None:
                entry = {}
            if isinstance(entry, list) and keyed_by == "name":
                entry = {"users": entry}
            if not isinstance(entry, dict):
                raise ConfigImportError(file, "must be a mapping", f"{index} ({key})")
            pairs.append((str(index), {keyed_by: key, **entry}))
        return pairs
    raise ConfigImportError(file, f"must be a list of entries, not {type(data).__name__}")


def _where(index: str, ident: Any) -> str:
    return f"{index} ({ident})" if ident not in (None, "") else index


def _text(file: str, where: str, entry: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigImportError(file, f"'{key}' is required", where)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigImportError(file, f"'{key}' must be text, not {type(value).__name__}", where)
    text = str(value).strip()
    if required and not text:
        raise ConfigImportError(file, f"'{key}' must not be empty", where)
    return text


def _flag(file: str, where: str, entry: dict[str, Any], key: str) -> bool:
    value = entry.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigImportError(file, f"'{key}' must be true or false, not {value!r}", where)
    return value


def _names(file: str, where: str, entry: dict[str, Any], key: str) -> tuple[str, ...]:
    value = entry.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        # The hub.jupyter.org/users annotation style: a comma-separated list.
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        raise ConfigImportError(file, f"'{key}' must be a list of names", where)
    names: list[str] = []
    for raw in value:
        name = str(raw).strip()
        if name and name not in names:
            names.append(name)
    return tuple(names)


def _warn_unknown(report: ImportReport, file: str, where: str, entry: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        report.warnings.append(f"{file}, entry {where}: ignored {', '.join(unknown)}")


def parse_profiles(data: Any, report: ImportReport) -> list[ProfileEntry]:
    parsed: list[ProfileEntry] = []
    slugs: set[str] = set()
    default_where = None
    for index, entry in _entries(PROFILES_FILE, data, keyed_by="slug", nested=("singleuser", "profileList")):
        if not isinstance(entry, dict):
            raise ConfigImportError(PROFILES_FILE, "must be a mapping", index)
        where = _where(index, entry.get("slug") or entry.get("display_name"))
        display_name = _text(PROFILES_FILE, where, entry, "display_name", required=True)
        slug = _text(PROFILES_FILE, where, entry, "slug") or slugify(display_name)
        where = _where(index, slug)
        if not slug:
            raise ConfigImportError(PROFILES_FILE, "no slug, and none can be made from display_name", where)
        if slug in slugs:
            raise ConfigImportError(PROFILES_FILE, f"slug '{slug}' is used twice", where)
        slugs.add(slug)
        override = entry.get("kubespawner_override") or {}
        if not isinstance(override, dict):
            raise ConfigImportError(PROFILES_FILE, "'kubespawner_override' must be a mapping", where)
        override = dict(override)
        image = override.pop("image", None)
        if not isinstance(image, str) or not image.strip():
            raise ConfigImportError(PROFILES_FILE, "'kubespawner_override.image' is required", where)
        default = _flag(PROFILES_FILE, where, entry, "default")
        if default and default_where:
            raise ConfigImportError(PROFILES_FILE, f"a second default profile (entry {default_where} is one)", where)
        if default:
            default_where = where
        _warn_unknown(report, PROFILES_FILE, where, entry, PROFILE_KEYS)
        parsed.append(
            ProfileEntry(
                where=where,
                values={
                    "slug": slug,
                    "display_name": display_name,
                    "description": _text(PROFILES_FILE, where, entry, "description"),
                    "image": image.strip(),
                    "default": default,
                    "order": int(index) * 10,
                    "enabled": True,
                    "enable_hdfs": _flag(PROFILES_FILE, where, entry, "enable_hdfs"),
                    "enable_gaffer": _flag(PROFILES_FILE, where, entry, "enable_gaffer"),
                    "enable_spark": _flag(PROFILES_FILE, where, entry, "enable_spark"),
                    "spark_image": _text(PROFILES_FILE, where, entry, "spark_image"),
                    "spark_ingress_host": _text(PROFILES_FILE, where, entry, "spark_ingress_host"),
                    "spark_ingress_path": _text(PROFILES_FILE, where, entry, "spark_ingress_path"),
                    "kubespawner_override": override,
                },
            )
        )
    return parsed


def parse_instances(file: str, data: Any, report: ImportReport) -> list[InstanceEntry]:
    parsed: list[InstanceEntry] = []
    keys: set[str] = set()
    for index, entry in _entries(file, data, keyed_by="id"):
        if not isinstance(entry, dict):
            raise ConfigImportError(file, "must be a mapping", index)
        where = _where(index, entry.get("id") or entry.get("name"))
        ident = _text(file, where, entry, "id")
        namespace = _text(file, where, entry, "namespace")
        name = _text(file, where, entry, "name")
        if ident:
            id_namespace, _, id_name = ident.rpartition(":")
            if (namespace and namespace != id_namespace) or (name and name != id_name):
                raise ConfigImportError(
                    file, f"id '{ident}' does not match namespace '{namespace}' / name '{name}'", where
                )
            key, namespace, name = ident, id_namespace, id_name
        elif name:
            key = f"{namespace}:{name}" if namespace else name
        else:
            raise ConfigImportError(file, "needs an 'id' (namespace:name) or a 'name'", where)
        where = _where(index, key)
        if not name:
            raise ConfigImportError(file, f"id '{key}' has no name after the ':'", where)
        if key in keys:
            raise ConfigImportError(file, f"id '{key}' is used twice", where)
        keys.add(key)
        _warn_unknown(report, file, where, entry, INSTANCE_KEYS)
        parsed.append(
            InstanceEntry(
                where=where,
                key=key,
                namespace=namespace,
                name=name,
                url=_text(file, where, entry, "url"),
                display_name=_text(file, where, entry, "display_name"),
                description=_text(file, where, entry, "description"),
                restriction=Restriction(
                    users=_names(file, where, entry, "users"), groups=_names(file, where, entry, "groups")
                ),
            )
        )
    return parsed


def parse_namespaces(data: Any, report: ImportReport) -> list[NamespaceEntry]:
    parsed: list[NamespaceEntry] = []
    patterns: set[str] = set()
    for index, entry in _entries(NAMESPACES_FILE, data, keyed_by="name"):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise ConfigImportError(NAMESPACES_FILE, "must be a name or a mapping", index)
        where = _where(index, entry.get("name"))
        pattern = _text(NAMESPACES_FILE, where, entry, "name", required=True)
        if pattern in patterns:
            raise ConfigImportError(NAMESPACES_FILE, f"namespace '{pattern}' is listed twice", where)
        patterns.add(pattern)
        _warn_unknown(report, NAMESPACES_FILE, where, entry, NAMESPACE_KEYS)
        parsed.append(
            NamespaceEntry(
                where=where,
                values={
                    "pattern": pattern,
                    "description": _text(NAMESPACES_FILE, where, entry, "description"),
                    "users": list(_names(NAMESPACES_FILE, where, entry, "users")),
                    "groups": list(_names(NAMESPACES_FILE, where, entry, "groups")),
                    "order": int(index) * 10,
                },
            )
        )
    return parsed


def parse_spark_defaults(data: Any) -> list[SparkEntry]:
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigImportError(SPARK_DEFAULTS_FILE, "must be a mapping of Spark property to value")
    parsed = []
    for key, value in data.items():
        where = f"'{key}'"
        if not isinstance(key, str):
            raise ConfigImportError(SPARK_DEFAULTS_FILE, "a property name must be text", where)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise ConfigImportError(SPARK_DEFAULTS_FILE, "the value must be text, a number or true/false", where)
        parsed.append(SparkEntry(where=where, key=key.strip(), value=text))
    return parsed


def config_parse(*, directory: Path, report: ImportReport) -> ParsedConfig:
    """Read and check the shape of every file present in ``directory``."""
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
        if name == PROFILES_FILE:
            parsed.profiles = parse_profiles(data, report)
        elif name == HDFS_FILE:
            parsed.hdfs = parse_instances(HDFS_FILE, data, report)
        elif name == GRAPHS_FILE:
            parsed.graphs = parse_instances(GRAPHS_FILE, data, report)
        elif name == NAMESPACES_FILE:
            parsed.namespaces = parse_namespaces(data, report)
        else:
            parsed.spark_defaults = parse_spark_defaults(data)
    if not report.files_read:
        raise ConfigImportError(str(directory), f"holds none of {', '.join(FILES)}")
    return parsed


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


def _apply_profiles(entries: list[ProfileEntry], report: ImportReport) -> None:
    counts = report.of(Profile)
    renames = {"image": "kubespawner_override.image"}
    defaults = [e.values["slug"] for e in entries if e.values["default"]]
    if defaults:
        # The file names the default: any other default profile steps down first,
        # or the one-default rule would refuse the imported one.
        for other in Profile.objects.filter(default=True).exclude(slug=defaults[0]):
            _save(other, {"default": False}, counts=counts, file=PROFILES_FILE, where=f"(existing '{other.slug}')")
    for entry in entries:
        profile = Profile.objects.filter(slug=entry.values["slug"]).first() or Profile(slug=entry.values["slug"])
        _save(profile, entry.values, counts=counts, file=PROFILES_FILE, where=entry.where, renames=renames)


def _apply_instances(
    file: str, model: type[HdfsInstance] | type[GafferGraph], entries: list[InstanceEntry], report: ImportReport
) -> list[tuple[InstanceEntry, HdfsInstance | GafferGraph]]:
    counts = report.of(model)
    kind = "HDFS instance" if model is HdfsInstance else "graph"
    applied = []
    for entry in entries:
        row = model.objects.filter(key=entry.key).first()
        values: dict[str, Any] = {}
        if entry.display_name:
            values["display_name"] = entry.display_name
        if entry.description:
            values["description"] = entry.description
        if row is None:
            if not entry.url:
                raise ConfigImportError(
                    file,
                    f"no url, and no discovered {kind} has the id '{entry.key}' "
                    "(run sync_cluster first to restrict a discovered one, or give its url)",
                    entry.where,
                )
            row = model(key=entry.key, source=Source.MANUAL)
            values.update(namespace=entry.namespace, name=entry.name, url_override=entry.url)
        elif entry.url:
            # The same URL as the cluster reports needs no override; a different one wins.
            values["url_override"] = "" if entry.url == row.observed_url else entry.url
        _save(row, values, counts=counts, file=file, where=entry.where, renames={"url_override": "url"})
        applied.append((entry, row))
    return applied


def _apply_restrictions(
    file: str,
    kind: str,
    relation: str,
    applied: Iterable[tuple[InstanceEntry, models.Model]],
    report: ImportReport,
) -> None:
    """One access rule per restricted entry, so exactly the listed users may use it."""
    counts = report.of(AccessRule)
    for entry, row in applied:
        rule_name = f"{IMPORTED_RULE_PREFIX}{kind} {entry.key}"
        rule = AccessRule.objects.filter(name=rule_name).first()
        if not entry.restriction:
            # Open to everyone again in the file: the import's own rule goes.
            if rule is not None:
                rule.delete()
                counts.deleted += 1
            continue
        values = {"everyone": False, "users": list(entry.restriction.users), "groups": list(entry.restriction.groups)}
        saved = _save(rule or AccessRule(name=rule_name), values, counts=counts, file=file, where=entry.where)
        rule = AccessRule.objects.get(name=rule_name)
        related = getattr(rule, relation)
        if set(related.values_list("pk", flat=True)) != {row.pk}:
            related.set([row])
            if not saved:
                counts.unchanged -= 1
                counts.updated += 1


def _apply_namespaces(entries: list[NamespaceEntry], report: ImportReport) -> None:
    counts = report.of(NamespaceOption)
    for entry in entries:
        pattern = entry.values["pattern"]
        option = NamespaceOption.objects.filter(pattern=pattern).first() or NamespaceOption(pattern=pattern)
        _save(option, entry.values, counts=counts, file=NAMESPACES_FILE, where=entry.where, renames={"pattern": "name"})


def _apply_spark_defaults(entries: list[SparkEntry], report: ImportReport) -> None:
    counts = report.of(SparkDefault)
    for order, entry in enumerate(entries, start=1):
        row = SparkDefault.objects.filter(key=entry.key).first() or SparkDefault(key=entry.key)
        _save(
            row,
            {"value": entry.value, "order": order * 10},
            counts=counts,
            file=SPARK_DEFAULTS_FILE,
            where=entry.where,
        )


def config_import(*, directory: Path, dry_run: bool = False) -> ImportReport:
    """Import every file found in ``directory``; all or nothing.

    Raises ConfigImportError naming the file, the entry and the reason.
    """
    report = ImportReport(dry_run=dry_run)
    parsed = config_parse(directory=directory, report=report)
    with transaction.atomic():
        if parsed.profiles is not None:
            _apply_profiles(parsed.profiles, report)
        if parsed.hdfs is not None:
            applied = _apply_instances(HDFS_FILE, HdfsInstance, parsed.hdfs, report)
            _apply_restrictions(HDFS_FILE, "hdfs", "hdfs_instances", applied, report)
        if parsed.graphs is not None:
            applied = _apply_instances(GRAPHS_FILE, GafferGraph, parsed.graphs, report)
            _apply_restrictions(GRAPHS_FILE, "graph", "gaffer_graphs", applied, report)
        if parsed.namespaces is not None:
            _apply_namespaces(parsed.namespaces, report)
        if parsed.spark_defaults is not None:
            _apply_spark_defaults(parsed.spark_defaults, report)
        if dry_run:
            transaction.set_rollback(True)
    return report
