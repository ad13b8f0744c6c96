"""What the portal knows: discovered from the cluster, and curated by operators.

Discovered rows keep *observed* columns (written only by the sync) apart from
*operator* columns (written only in the admin). A row is keyed by the
Kubernetes object's namespace and name, so a Helm reinstall that gives the
object a new UID finds the same row and the operator's choices survive. Rows
are never deleted when their object disappears: they get ``missing_since``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from inventory.lifecycle import ImageRules, Lifecycle, chain_end, is_pattern
from inventory.scheduling import is_qualified_name, node_affinity_errors, node_selector_errors, toleration_errors


class Source(models.TextChoices):
    DISCOVERED = "discovered", "Discovered in the cluster"
    MANUAL = "manual", "Added by an operator"


class DiscoveredQuerySet(models.QuerySet):
    def present(self) -> DiscoveredQuerySet:
        return self.filter(missing_since__isnull=True)

    def offerable(self) -> DiscoveredQuerySet:
        """What the spawn form may offer: present (or manual) and not hidden."""
        return self.filter(missing_since__isnull=True, hidden=False)


class StaticEntryQuerySet(DiscoveredQuerySet):
    def offerable(self) -> StaticEntryQuerySet:
        """Present (or manual) and not hidden, or listed statically: the candidates ``is_offered`` decides on."""
        return self.filter(hidden=False).filter(Q(missing_since__isnull=True) | Q(static_entry=True))


class Discovered(models.Model):
    """Columns shared by everything the sync finds."""

    key = models.CharField(
        max_length=317,
        unique=True,
        help_text="The id the spawn form uses: namespace:name.",
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.DISCOVERED)

    # Observed: written by sync_cluster only.
    namespace = models.CharField(max_length=63, db_index=True, blank=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True, help_text="UID of the Kubernetes object")
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When the object disappeared from the cluster."
    )

    # Operator-owned: never written by the sync.
    hidden = models.BooleanField(default=False, help_text="Hidden entries are neither offered nor accepted.")
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    order = models.IntegerField(default=0, help_text="Lower comes first in the spawn form.")

    objects = DiscoveredQuerySet.as_manager()

    OBSERVED_FIELDS: tuple[str, ...] = ("namespace", "name", "uid", "labels", "annotations")

    class Meta:
        abstract = True
        ordering = ("order", "key")

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return self.display_name or self.key

    @property
    def is_missing(self) -> bool:
        return self.missing_since is not None

    @property
    def is_offered(self) -> bool:
        """Whether the spawn form may offer it (and /prespawn accept it), before anyone's access."""
        return self.missing_since is None and not self.hidden


class StaticEntry(Discovered):
    """An HDFS instance or graph the original's static file (hdfs.yaml / graphs.yaml) may list.

    As in the original, a listed entry whose id the cluster shows only restricts
    that instance (through an access rule); while the cluster does not show it,
    the entry itself is offered with its static URL. import_config writes these.
    """

    static_entry = models.BooleanField(
        default=False,
        help_text="Listed in the original's static file: offered from the static values while the cluster "
        "does not show it.",
    )
    static_url = models.CharField(max_length=500, blank=True, help_text="The static file's URL")

    # django-stubs reads the base's manager as a class variable; Django itself allows the override.
    objects = StaticEntryQuerySet.as_manager()  # type: ignore[misc]

    class Meta(Discovered.Meta):
        abstract = True

    @property
    def in_cluster(self) -> bool:
        return self.source == Source.DISCOVERED and self.missing_since is None

    @property
    def uses_static_entry(self) -> bool:
        """Offered as the static file's entry, because the cluster does not show the instance."""
        return self.static_entry and self.source == Source.DISCOVERED and not self.in_cluster

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def available(self) -> bool:
        return bool(self.url)

    @property
    def is_offered(self) -> bool:
        if self.hidden:
            return False
        if not self.uses_static_entry and self.missing_since is not None:
            return False
        return self.available


class Namespace(models.Model):
    """A Kubernetes namespace that exists (or existed) in the cluster."""

    name = models.CharField(max_length=63, unique=True)
    uid = models.CharField(max_length=64, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(null=True, blank=True, db_index=True)

    OBSERVED_FIELDS: tuple[str, ...] = ("uid", "labels")

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class HdfsInstance(StaticEntry):
    """An HDFS deployment: a namenode Service, or an operator's manual entry."""

    observed_url = models.CharField(
        max_length=500, blank=True, help_text="hdfs://SERVICE.NAMESPACE.svc:PORT (the port named client-rpc)"
    )
    url_override = models.CharField(
        max_length=500, blank=True, help_text="Operator's URL; required for manual entries."
    )

    OBSERVED_FIELDS = (*Discovered.OBSERVED_FIELDS, "observed_url")

    class Meta(Discovered.Meta):
        verbose_name = "HDFS instance"

    @property
    def url(self) -> str:
        if self.uses_static_entry:
            return self.static_url
        return self.url_override or self.observed_url

    def clean(self) -> None:
        if self.source == Source.MANUAL and not self.url_override:
            raise ValidationError({"url_override": "A manual HDFS instance needs a URL."})
        for field in ("url_override", "static_url"):
            if getattr(self, field) and not getattr(self, field).startswith(("hdfs://", "viewfs://")):
                raise ValidationError({field: "The URL must start with hdfs:// or viewfs://."})


class GafferGraph(StaticEntry):
    """A Gaffer graph: REST API Service plus config/schema ConfigMaps and a store Secret."""

    observed_url = models.CharField(
        max_length=500, blank=True, help_text="http://SERVICE.NAMESPACE.svc:PORT/rest (the port named http)"
    )
    url_override = models.CharField(max_length=500, blank=True)
    observed_description = models.TextField(blank=True, help_text="From graphConfig.json")
    api_service = models.CharField(max_length=253, blank=True)
    graph_config_map = models.CharField(max_length=253, blank=True)
    graph_config_files = models.JSONField(default=dict, blank=True)
    schema_config_map = models.CharField(max_length=253, blank=True)
    schema_files = models.JSONField(default=dict, blank=True)
    # Only the Secret's name: its contents are credentials and never stored here.
    store_secret = models.CharField(max_length=253, blank=True)
    static_description = models.TextField(blank=True, help_text="graphConfig.description of the static file")

    OBSERVED_FIELDS = (
        *Discovered.OBSERVED_FIELDS,
        "observed_url",
        "observed_description",
        "api_service",
        "graph_config_map",
        "graph_config_files",
        "schema_config_map",
        "schema_files",
        "store_secret",
    )

    class Meta(Discovered.Meta):
        verbose_name = "Gaffer graph"

    @property
    def url(self) -> str:
        if self.uses_static_entry:
            return self.static_url
        return self.url_override or self.observed_url

    @property
    def in_cluster(self) -> bool:
        """The original counted a graph as discovered once its store-properties Secret existed."""
        return super().in_cluster and bool(self.store_secret)

    @property
    def summary(self) -> str:
        if self.uses_static_entry:
            return self.description or self.static_description
        return self.description or self.observed_description

    @property
    def available(self) -> bool:
        if self.uses_static_entry:
            # The original offered a static graph even with restApi null.
            return True
        if self.source == Source.MANUAL:
            return bool(self.url)
        return self.in_cluster

    def mounted_files(self) -> tuple[str, str, str]:
        """(graph config ConfigMap, schema ConfigMap, store Secret) to mount; none for a static entry."""
        if self.uses_static_entry:
            return ("", "", "")
        return (self.graph_config_map, self.schema_config_map, self.store_secret)

    def clean(self) -> None:
        if self.source == Source.MANUAL and not self.url_override:
            raise ValidationError({"url_override": "A manual Gaffer graph needs a REST API URL."})
        for field in ("url_override", "static_url"):
            if getattr(self, field) and not getattr(self, field).startswith(("http://", "https://")):
                raise ValidationError({field: "The URL must start with http:// or https://."})


class ServiceAccount(Discovered):
    """A service account labelled for notebooks, with its AWS IAM role."""

    observed_role_arn = models.CharField(max_length=2048, blank=True, help_text="eks.amazonaws.com/role-arn")
    observed_users = models.JSONField(default=list, blank=True, help_text="hub.jupyter.org/users; empty means everyone")
    role_arn_override = models.CharField(
        max_length=2048, blank=True, help_text="Shown instead of the annotation's role."
    )

    OBSERVED_FIELDS = (*Discovered.OBSERVED_FIELDS, "observed_role_arn", "observed_users")

    class Meta(Discovered.Meta):
        verbose_name = "service account"

    @property
    def role_arn(self) -> str:
        return self.role_arn_override or self.observed_role_arn

    @property
    def role_name(self) -> str:
        return role_name_from_arn(self.role_arn)

    @property
    def role_console_url(self) -> str:
        name = self.role_name
        if not name:
            return ""
        return f"https://console.aws.amazon.com/iam/home#/roles/{name}"

    def clean(self) -> None:
        if self.role_arn_override and not self.role_arn_override.startswith("arn:"):
            raise ValidationError({"role_arn_override": "An IAM role ARN starts with arn:"})


def role_name_from_arn(arn: str) -> str:
    """``arn:aws:iam::123:role/path/name`` → ``name`` (empty for anything else)."""
    if not arn or ":role/" not in arn:
        return ""
    return arn.split(":role/", 1)[1].rsplit("/", 1)[-1]


class NotebookVolume(Discovered):
    """A PersistentVolumeClaim made for a user's notebook."""

    # The raw owner from the hub.jupyter.org/username annotation, and apart from it the
    # label's DNS-safe form: a raw username must never be compared with a label, or a
    # user could pick a name equal to another user's escaped form and get their volume.
    owner_username = models.CharField(max_length=255, blank=True, db_index=True)
    owner_label = models.CharField(max_length=63, blank=True, db_index=True)
    owner_servername = models.CharField(max_length=255, blank=True)
    volume_name = models.CharField(max_length=255, blank=True)
    capacity = models.CharField(max_length=32, blank=True)
    phase = models.CharField(max_length=32, blank=True)

    OBSERVED_FIELDS = (
        *Discovered.OBSERVED_FIELDS,
        "owner_username",
        "owner_label",
        "owner_servername",
        "volume_name",
        "capacity",
        "phase",
    )

    class Meta(Discovered.Meta):
        verbose_name = "notebook volume"


class SyncRound(models.Model):
    """One pass of sync_cluster, so operators can see how fresh the inventory is."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        FULL = "full", "Full list"
        WATCH = "watch", "Watch events"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    objects_seen = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    marked_missing = models.PositiveIntegerField(default=0)
    returned = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True, help_text="Counts by kind")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-started_at",)
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def rows_written(self) -> int:
        return self.added + self.changed + self.marked_missing + self.returned


# --- Curated by operators -------------------------------------------------


_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")

# Traits a profile's overrides may not set: the image has its own field, and the
# namespace is the user's choice among those the access rules allow. (Resource
# and volume traits may be given; the reply's values, applied after, win.)
PORTAL_CONTROLLED_TRAITS = frozenset({"image", "namespace"})


class Lifecycled(models.Model):
    """Active, deprecated (offered with a message) or retired with a successor of the same kind (inventory/lifecycle.py)."""

    lifecycle = models.CharField(
        max_length=16,
        choices=Lifecycle.choices,
        default=Lifecycle.ACTIVE,
        help_text="Retired: no longer offered; remembered choices move to the successor and /prespawn names it.",
    )
    lifecycle_message = models.CharField(
        max_length=500,
        blank=True,
        help_text="Shown beside it on the spawn form while deprecated, and in the notice when a user's "
        "remembered choice moves to the successor.",
    )
    successor = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="predecessors",
        help_text="What replaces it once retired.",
    )

    # Declared for the type checker: django-stubs does not add the column of a "self" key on an abstract model.
    successor_id: Any

    class Meta:
        abstract = True

    @property
    def is_retired(self) -> bool:
        return self.lifecycle == Lifecycle.RETIRED

    def lifecycle_errors(self) -> dict[str, str]:
        """A retired row needs a successor, and its chain of successors must end at one that is not retired."""
        what = self._meta.verbose_name
        if self.lifecycle != Lifecycle.RETIRED:
            return {}
        if self.successor_id is None:
            return {"successor": f"A retired {what} needs a successor: the {what} its users move to."}
        if self.pk is not None and self.successor_id == self.pk:
            return {"successor": f"A {what} cannot be its own successor."}
        model = type(self)

        def successor(row: Lifecycled) -> Lifecycled | None:
            # This row as it is being saved, not as it is stored.
            if row.successor_id is not None and row.successor_id == self.pk:
                return self
            return model._default_manager.filter(pk=row.successor_id).first() if row.successor_id else None

        end = chain_end(self, retired=lambda row: row.is_retired, successor=successor, identity=lambda row: row.pk)
        if end is None:
            return {
                "successor": f"The chain of successors loops back or ends at a retired {what} without one; "
                f"choose a {what} that is not retired, or whose successors lead to one."
            }
        if not getattr(end, "enabled", True):
            return {"successor": f"'{end}' (where the successors lead) is disabled: its users could not move to it."}
        return {}


class Profile(Lifecycled):
    """A notebook image and what it enables (the original's profileList entry)."""

    slug = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    image = models.CharField(max_length=500, help_text="Notebook container image")
    default = models.BooleanField(default=False, help_text="Preselected in the form; one at most.")
    order = models.IntegerField(default=0)
    enabled = models.BooleanField(default=True)
    enable_hdfs = models.BooleanField(default=False)
    enable_gaffer = models.BooleanField(default=False)
    enable_spark = models.BooleanField(default=False)
    spark_image = models.CharField(max_length=500, blank=True)
    spark_ingress_host = models.CharField(
        max_length=253, blank=True, help_text="May use {{USERNAME}} and {{SERVERNAME}}"
    )
    spark_ingress_path = models.CharField(
        max_length=500, blank=True, help_text="May use {{USERNAME}} and {{SERVERNAME}}"
    )
    kubespawner_override = models.JSONField(
        default=dict, blank=True, help_text="Extra KubeSpawner trait values, as a JSON object."
    )
    machine_types: models.ManyToManyField[MachineType, Any] = models.ManyToManyField(
        "MachineType",
        blank=True,
        related_name="profiles",
        help_text="The machine types this profile runs on; none chosen means every machine type.",
    )

    class Meta:
        ordering = ("order", "display_name")
        constraints = [
            models.UniqueConstraint(fields=["default"], condition=Q(default=True), name="one_default_profile"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.enable_spark and not self.spark_image:
            errors["spark_image"] = "A profile that enables Spark needs a Spark image."
        if self.spark_ingress_path and not self.spark_ingress_path.startswith("/"):
            # The apiserver rejects an Ingress whose path is not absolute, failing the spawn.
            errors["spark_ingress_path"] = "An ingress path starts with /."
        if self.spark_ingress_host:
            # Checked with short sample names: typos (spaces, underscores, other
            # placeholders) would otherwise fail every spawn in the apiserver.
            sample = self.spark_ingress_host.replace("{{USERNAME}}", "user").replace("{{SERVERNAME}}", "server")
            if not _DNS_SUBDOMAIN.fullmatch(sample):
                errors["spark_ingress_host"] = (
                    "A host name is lower-case DNS labels separated by dots; the only placeholders are "
                    "{{USERNAME}} and {{SERVERNAME}}."
                )
        if not isinstance(self.kubespawner_override, dict):
            errors["kubespawner_override"] = "Extra overrides must be a JSON object."
        else:
            reserved = sorted(set(self.kubespawner_override) & PORTAL_CONTROLLED_TRAITS)
            odd = sorted(key for key in self.kubespawner_override if not str(key).isidentifier())
            if reserved:
                errors["kubespawner_override"] = (
                    f"The portal sets {', '.join(reserved)} itself (the image field above; the user's namespace "
                    "choice); remove them here."
                )
            elif odd:
                errors["kubespawner_override"] = f"These are not KubeSpawner trait names: {', '.join(odd)}."
        if self.default:
            others = Profile.objects.filter(default=True).exclude(pk=self.pk)
            if others.exists():
                errors["default"] = f"'{others.first()}' is already the default profile."
        errors.update(self.lifecycle_errors())
        if errors:
            raise ValidationError(errors)

    def kubespawner_overrides(self) -> dict[str, Any]:
        return {**(self.kubespawner_override or {}), "image": self.image}


# A profile option's slug (KubeSpawner's option name) has no "__", so its form field names
# (below) split unambiguously; it and a choice's key are plain tokens, safe in HTML names and ids.
_OPTION_SLUG = re.compile(r"(?!.*__)[a-z0-9]([-_a-z0-9]{0,28}[a-z0-9])?")
_CHOICE_KEY = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
PROFILE_OPTION_FIELD_PREFIX = "profile_option_"
UNLISTED_SUFFIX = "__unlisted"
# The hub API's longest form field name (spawning.serializers.UserOptionsField).
MAX_FORM_FIELD_NAME = 100


def override_errors(value: object, *, allow_image: bool) -> list[str]:
    """What is wrong with a ``kubespawner_override`` mapping (trait name → value)."""
    if not isinstance(value, dict):
        return ["Overrides must be a JSON object of KubeSpawner trait names and values."]
    reserved = PORTAL_CONTROLLED_TRAITS - ({"image"} if allow_image else set())
    errors = []
    taken = sorted(set(value) & reserved)
    if taken:
        errors.append(f"The portal sets {', '.join(taken)} itself; remove it here.")
    odd = sorted(str(key) for key in value if not str(key).isidentifier())
    if odd:
        errors.append(f"These are not KubeSpawner trait names: {', '.join(odd)}.")
    return errors


class ProfileOption(models.Model):
    """A further choice within a profile (KubeSpawner's ``profile_options``): its choices and an unlisted one.

    The chosen choice's ``kubespawner_override`` is applied on top of the profile's, in
    the options' order; with ``unlisted_enabled`` the user may instead type a value,
    checked against ``unlisted_validation_regex`` and put where the unlisted
    overrides say ``{value}``.
    """

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="options")
    slug = models.CharField(
        max_length=30, help_text="Lower-case letters, digits, '-' and '_'; unique within the profile."
    )
    display_name = models.CharField(max_length=200)
    order = models.IntegerField(default=0)
    choices = models.JSONField(
        default=list,
        blank=True,
        help_text='A list of {"key", "display_name", "default", "kubespawner_override"}, in the order offered.',
    )
    unlisted_enabled = models.BooleanField(default=False, help_text="Let users type a value of their own.")
    unlisted_display_name = models.CharField(max_length=200, blank=True, help_text="The free-text field's label.")
    unlisted_validation_regex = models.CharField(
        max_length=500, blank=True, help_text="A typed value must match this (Python re.match, as KubeSpawner)."
    )
    unlisted_validation_message = models.CharField(
        max_length=500, blank=True, help_text="Said when a typed value does not match."
    )
    unlisted_kubespawner_override = models.JSONField(
        default=dict, blank=True, help_text="Overrides for a typed value; {value} in any text is replaced by it."
    )

    class Meta:
        ordering = ("profile", "order", "slug")
        constraints = [models.UniqueConstraint(fields=["profile", "slug"], name="one_option_slug_per_profile")]

    def __str__(self) -> str:
        return f"{self.profile.slug}: {self.display_name}"

    def field_name(self, profile_slug: str | None = None) -> str:
        """The form field holding the chosen key."""
        return f"{PROFILE_OPTION_FIELD_PREFIX}{profile_slug or self.profile.slug}__{self.slug}"

    def unlisted_field_name(self, profile_slug: str | None = None) -> str:
        """The form field holding a typed value."""
        return self.field_name(profile_slug) + UNLISTED_SUFFIX

    def default_choice(self) -> dict[str, Any] | None:
        """The choice marked default, else the first (as KubeSpawner initialises them)."""
        choices = self.choices if isinstance(self.choices, list) else []
        return next((c for c in choices if c.get("default")), choices[0] if choices else None)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not _OPTION_SLUG.fullmatch(self.slug or ""):
            errors["slug"] = (
                "1 to 30 lower-case letters, digits, '-' and '_' (never two '_' together), "
                "starting and ending with a letter or digit."
            )
        elif self.profile_id is not None and len(self.unlisted_field_name()) > MAX_FORM_FIELD_NAME:
            errors["slug"] = (
                f"Its form field name would be longer than {MAX_FORM_FIELD_NAME} characters; "
                "shorten this slug or the profile's."
            )
        problems = self._choice_errors()
        if problems:
            errors["choices"] = " ".join(problems)
        if not self.choices and not self.unlisted_enabled:
            errors.setdefault("choices", "Give at least one choice, or let users type a value (unlisted).")
        if self.unlisted_validation_regex:
            try:
                re.compile(self.unlisted_validation_regex)
            except re.error as exc:
                errors["unlisted_validation_regex"] = f"Not a regular expression: {exc}."
        problems = override_errors(self.unlisted_kubespawner_override, allow_image=True)
        if problems:
            errors["unlisted_kubespawner_override"] = " ".join(problems)
        elif self.unlisted_enabled and "{value}" not in _texts(self.unlisted_kubespawner_override):
            errors["unlisted_kubespawner_override"] = "Say where the typed value goes: {value} in some text."
        if errors:
            raise ValidationError(errors)

    def _choice_errors(self) -> list[str]:
        if not isinstance(self.choices, list):
            return ["Choices are a JSON list."]
        errors: list[str] = []
        keys: set[str] = set()
        defaults = 0
        for index, choice in enumerate(self.choices, start=1):
            if not isinstance(choice, dict):
                errors.append(f"Choice {index} is not a JSON object.")
                continue
            key = choice.get("key")
            if not isinstance(key, str) or not _CHOICE_KEY.fullmatch(key):
                errors.append(f"Choice {index}: 'key' is 1 to 63 letters, digits, '-', '_' or '.'.")
            elif key in keys:
                errors.append(f"Choice {index}: the key '{key}' is used twice.")
            else:
                keys.add(key)
            if not isinstance(choice.get("display_name", ""), str):
                errors.append(f"Choice {index}: 'display_name' is text.")
            if not isinstance(choice.get("default", False), bool):
                errors.append(f"Choice {index}: 'default' is true or false.")
            defaults += choice.get("default") is True
            errors.extend(
                f"Choice {index}: {problem}"
                for problem in override_errors(choice.get("kubespawner_override", {}), allow_image=True)
            )
            unknown = sorted(set(choice) - {"key", "display_name", "default", "kubespawner_override"})
            if unknown:
                errors.append(f"Choice {index}: unknown keys {', '.join(map(str, unknown))}.")
        if defaults > 1:
            errors.append("At most one choice is the default.")
        return errors


def _texts(value: Any) -> str:
    """Every text inside a JSON value, joined: where {value} may appear."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_texts(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_texts(v) for v in value)
    return ""


class ImageLifecycle(models.Model):
    """Operators' word on notebook images, by reference or pattern: deprecated, or retired with the image replacing it.

    A profile's image is a string, so images are described here rather than linked.
    The most specific entry matching an image decides (inventory/lifecycle.py): a
    profile whose image is deprecated shows the message on the form; one whose image
    is retired starts the successor image instead.
    """

    pattern = models.CharField(
        max_length=500,
        unique=True,
        help_text="An image reference (registry/repository:tag), or a pattern where * stands for anything: "
        "jupyter/scipy-notebook:2023-* or jupyter/scipy-notebook:*. An exact reference wins over any "
        "pattern, a longer pattern over a shorter one.",
    )
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.DEPRECATED)
    message = models.CharField(max_length=500, blank=True, help_text="Shown on the spawn form beside the profile.")
    successor_image = models.CharField(
        max_length=500, blank=True, help_text="Retired: the image notebooks start instead (one reference)."
    )

    class Meta:
        ordering = ("pattern",)
        verbose_name = "image lifecycle"

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.pattern.strip() or any(c.isspace() for c in self.pattern):
            errors["pattern"] = "An image reference or pattern has no spaces."
        if self.successor_image and (
            is_pattern(self.successor_image) or any(c.isspace() for c in self.successor_image)
        ):
            errors["successor_image"] = "The successor is one image reference, without * or spaces."
        elif self.lifecycle == Lifecycle.RETIRED and not self.successor_image:
            errors["successor_image"] = "A retired image needs a successor: the image notebooks start instead."
        elif self.lifecycle == Lifecycle.RETIRED and not errors:
            rules = ImageRules.of([*ImageLifecycle.objects.exclude(pk=self.pk).exclude(pattern=self.pattern), self])
            starts = [self.successor_image] if is_pattern(self.pattern) else [self.pattern, self.successor_image]
            if any(rules.successor_chain(start) is None for start in starts):
                errors["successor_image"] = (
                    f"'{self.successor_image}' leads back to a retired image: the successors loop. "
                    "Choose an image that is not retired, or whose successors lead to one."
                )
        if errors:
            raise ValidationError(errors)


@dataclass(frozen=True)
class Quantity:
    """A resource a notebook asks an amount of: a preset column (with ``_min``/``_max``) and a ceiling ``max_<key>``.

    The built-in bounds, used while no preset exists, are the preset columns' defaults.
    """

    key: str
    unit: str
    # MB and GB are whole numbers; vCPU may be a fraction.
    whole: bool
    # What operators see it as in the admin.
    title: str

    def wire(self, value: Decimal) -> float | int:
        """An amount as JSON carries it: whole quantities as integers, CPUs as floats."""
        return int(value) if self.whole else float(value)


QUANTITIES: tuple[Quantity, ...] = (
    Quantity("cpu", "vCPU", whole=False, title="Notebook CPU"),
    Quantity("mem", "MB", whole=True, title="Notebook memory"),
    Quantity("spark_cpu", "vCPU", whole=False, title="Spark executor CPU"),
    Quantity("spark_mem", "MB", whole=True, title="Spark executor memory"),
    Quantity("disk", "GB", whole=True, title="New volume size"),
)


def _positive_decimal() -> list[MinValueValidator]:
    return [MinValueValidator(Decimal("0"))]


class ResourcePreset(models.Model):
    """A named size (Small, Medium, …) with the bounds custom values must stay within."""

    slug = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    default = models.BooleanField(default=False)
    order = models.IntegerField(default=0)

    cpu = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("0.25"), validators=_positive_decimal())
    cpu_min = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("0.1"), validators=_positive_decimal()
    )
    cpu_max = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("4"), validators=_positive_decimal())
    mem = models.PositiveIntegerField(default=512, help_text="MB")
    mem_min = models.PositiveIntegerField(default=256, help_text="MB")
    mem_max = models.PositiveIntegerField(default=16384, help_text="MB")
    spark_cpu = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("1"), validators=_positive_decimal()
    )
    spark_cpu_min = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("0.1"), validators=_positive_decimal()
    )
    spark_cpu_max = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("4"), validators=_positive_decimal()
    )
    spark_mem = models.PositiveIntegerField(default=512, help_text="MB")
    spark_mem_min = models.PositiveIntegerField(default=256, help_text="MB")
    spark_mem_max = models.PositiveIntegerField(default=16384, help_text="MB")
    disk = models.PositiveIntegerField(default=10, help_text="GB, for a new volume")
    disk_min = models.PositiveIntegerField(default=1, help_text="GB")
    disk_max = models.PositiveIntegerField(default=100, help_text="GB")

    BOUNDED = tuple(quantity.key for quantity in QUANTITIES)

    class Meta:
        ordering = ("order", "display_name")
        constraints = [
            models.UniqueConstraint(fields=["default"], condition=Q(default=True), name="one_default_preset"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for field in self.BOUNDED:
            low, value, high = getattr(self, f"{field}_min"), getattr(self, field), getattr(self, f"{field}_max")
            if low is None or value is None or high is None:
                continue
            if low <= 0:
                # A zero guarantee gives a notebook no CPU or memory at all when the node is busy.
                errors[f"{field}_min"] = "The minimum must be above zero."
            elif low > high:
                errors[f"{field}_min"] = f"The minimum ({low}) is above the maximum ({high})."
            elif not low <= value <= high:
                errors[field] = f"The value ({value}) must be between {low} and {high}."
        if self.default:
            others = ResourcePreset.objects.filter(default=True).exclude(pk=self.pk)
            if others.exists():
                errors["default"] = f"'{others.first()}' is already the default preset."
        if errors:
            raise ValidationError(errors)


class NamespaceOption(models.Model):
    """A namespace users may pick: fixed (``analytics``) or templated (``user-{username}``)."""

    pattern = models.CharField(max_length=63, unique=True, help_text="A name, or a template using {username}.")
    description = models.CharField(max_length=500, blank=True)
    users = models.JSONField(default=list, blank=True, help_text="Usernames; empty with no groups = everyone")
    groups = models.JSONField(default=list, blank=True, help_text="JupyterHub groups")
    order = models.IntegerField(default=0)

    class Meta:
        ordering = ("order", "pattern")
        verbose_name = "namespace option"

    def __str__(self) -> str:
        return self.pattern

    @property
    def templated(self) -> bool:
        return "{username}" in self.pattern

    def clean(self) -> None:
        for field in ("users", "groups"):
            value = getattr(self, field)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError({field: "Must be a JSON list of names."})
        # Anything but a DNS label once {username} is filled in names a namespace that
        # can never exist, so the option would silently never be offered.
        sample = self.pattern.replace("{username}", "user")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", sample):
            raise ValidationError(
                {
                    "pattern": "A namespace name is lower-case letters, digits and '-', starting and ending "
                    "alphanumeric; the only placeholder is {username}."
                }
            )


# What a ConfigMap accepts as a file name (a data key), and its size limit.
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_CONFIG_MAP_MAX_BYTES = 1024 * 1024


class DataSource(models.Model):
    """Connection settings operators curate (endpoints, catalogues): files a notebook given it reads.

    /prespawn puts the files in a ConfigMap of the notebook's namespace and mounts it
    at ``/etc/datasources/<slug>``. Open to everyone until an access rule names it.
    """

    slug = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    files = models.JSONField(default=dict, blank=True, help_text='File name → content, e.g. {"kafka.properties": "…"}')
    enabled = models.BooleanField(default=True)
    order = models.IntegerField(default=0)

    class Meta:
        ordering = ("order", "display_name")

    def __str__(self) -> str:
        return self.display_name

    def clean(self) -> None:
        files = self.files
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValidationError({"files": "Must be a JSON object of file names and their text."})
        bad = [name for name in files if not _CONFIG_MAP_KEY.match(name)]
        if bad:
            raise ValidationError({"files": f"'{bad[0][:60]}' is not a file name a ConfigMap can hold."})
        if sum(len(k.encode()) + len(v.encode()) for k, v in files.items()) > _CONFIG_MAP_MAX_BYTES:
            raise ValidationError({"files": "The files are larger than a ConfigMap can hold (1 MiB)."})


class AccessRule(models.Model):
    """Who (users, JupyterHub groups, or everyone) may use what, and their ceilings.

    An item that no rule names is open to everyone (as in the original). Once a
    rule names an item, only the users and groups of the rules naming it may use it.
    """

    name = models.CharField(max_length=200, unique=True)
    everyone = models.BooleanField(default=False, help_text="Applies to every user.")
    users = models.JSONField(default=list, blank=True)
    groups = models.JSONField(default=list, blank=True)

    profiles = models.ManyToManyField(Profile, blank=True, related_name="access_rules")
    namespaces = models.ManyToManyField(NamespaceOption, blank=True, related_name="access_rules")
    hdfs_instances = models.ManyToManyField(HdfsInstance, blank=True, related_name="access_rules")
    gaffer_graphs = models.ManyToManyField(GafferGraph, blank=True, related_name="access_rules")
    service_accounts = models.ManyToManyField(ServiceAccount, blank=True, related_name="access_rules")
    machine_types: models.ManyToManyField[MachineType, Any] = models.ManyToManyField(
        "MachineType", blank=True, related_name="access_rules"
    )
    data_sources = models.ManyToManyField(DataSource, blank=True, related_name="access_rules")

    max_cpu = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    max_mem = models.PositiveIntegerField(null=True, blank=True, help_text="MB")
    max_spark_cpu = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    max_spark_mem = models.PositiveIntegerField(null=True, blank=True, help_text="MB")
    max_disk = models.PositiveIntegerField(null=True, blank=True, help_text="GB")
    max_gpus = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most GPUs (of any extended resource) one notebook may ask for."
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def applies_to(self, username: str, groups: list[str] | tuple[str, ...]) -> bool:
        if self.everyone:
            return True
        return username in (self.users or []) or bool(set(groups) & set(self.groups or []))

    def clean(self) -> None:
        for field in ("users", "groups"):
            value = getattr(self, field)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError({field: "Must be a JSON list of names."})
        if not self.everyone and not self.users and not self.groups:
            raise ValidationError("Name at least one user or group, or tick 'everyone'.")
        errors = {
            field: "A ceiling must be above zero."
            for field in (f"max_{quantity.key}" for quantity in QUANTITIES)
            # max_gpus (not a preset quantity) may be 0: a rule can grant a GPU machine type's CPU-only sizes.
            if getattr(self, field) is not None and getattr(self, field) <= 0
        }
        if errors:
            raise ValidationError(errors)


class SparkDefault(models.Model):
    """A ``spark-defaults.conf`` property every notebook's Spark config gets."""

    key = models.CharField(max_length=200, unique=True)
    value = models.CharField(max_length=2000)
    order = models.IntegerField(default=0)

    class Meta:
        ordering = ("order", "key")
        verbose_name = "Spark default"

    def __str__(self) -> str:
        return f"{self.key} {self.value}"

    def clean(self) -> None:
        if not self.key.startswith("spark.") or any(c.isspace() for c in self.key):
            raise ValidationError({"key": "A Spark property starts with 'spark.' and has no spaces."})
        if "\n" in self.value or "\r" in self.value:
            raise ValidationError({"value": "A value is one line."})


class InventoryGeneration(models.Model):
    """A one-row counter bumped in the same transaction as every write the spawn form depends on.

    Readers may keep what they built from the inventory while the generation they
    read before building it is still current. ``token`` is new on every bump, so a
    bump that was rolled back can never be mistaken for a later one with the same number.
    """

    number = models.BigIntegerField(default=0)
    token = models.UUIDField(default=uuid.uuid4)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "inventory generation"

    def __str__(self) -> str:
        return f"generation {self.number}"


# --- Compute: what the cluster's nodes offer, and what operators offer of them ---


class ClusterNode(models.Model):
    """A Kubernetes Node as capacity needs it; written by the sync only."""

    name = models.CharField(max_length=253, unique=True)
    uid = models.CharField(max_length=64, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    taints = models.JSONField(default=list, blank=True, help_text="[{key, value, effect}]")
    allocatable = models.JSONField(default=dict, blank=True, help_text="Resource name → milli-units.")
    ready = models.BooleanField(default=False)
    unschedulable = models.BooleanField(default=False)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(null=True, blank=True, db_index=True)

    OBSERVED_FIELDS: tuple[str, ...] = ("uid", "labels", "taints", "allocatable", "ready", "unschedulable")

    class Meta:
        ordering = ("name",)
        verbose_name = "node"

    def __str__(self) -> str:
        return self.name


class PodRequest(models.Model):
    """One resource one running pod holds on its node, in milli-units.

    Only bound, unfinished pods have rows; a pod that ends loses them. One row per
    (pod, resource) lets the database sum a node's use with one GROUP BY.
    """

    pod = models.CharField(max_length=317, db_index=True, help_text="namespace:name")
    node_name = models.CharField(max_length=253)
    resource = models.CharField(max_length=316)
    amount = models.BigIntegerField(help_text="Milli-units: 1 CPU is 1000, 1 byte of memory is 1000.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pod", "resource"], name="one_row_per_pod_resource")]
        indexes = [models.Index(fields=["node_name", "resource"], name="pod_request_node")]

    def __str__(self) -> str:
        return f"{self.pod} {self.resource}={self.amount}m on {self.node_name}"


class NodeUsage(models.Model):
    """What the running pods on one node request in total, in milli-units; written by the sync only.

    Kept by delta as the pod watch moves pods (the sync knows each pod's rows before and
    after), and recounted on every full round, so capacity reads one row per node instead
    of summing every PodRequest row.
    """

    node_name = models.CharField(max_length=253, unique=True)
    used = models.JSONField(default=dict, blank=True, help_text="Resource name → milli-units requested.")

    class Meta:
        ordering = ("node_name",)
        verbose_name = "node usage"

    def __str__(self) -> str:
        return self.node_name


class NotebookPod(models.Model):
    """A running notebook pod (labelled ``optionsportal.io/role=notebook``), for the dashboard; written by the sync only.

    Like PodRequest, a row goes when its pod ends. ``username`` and ``server_name``
    are the pod's label values: the names themselves when they fit a label, else
    their escaped form.
    """

    ref = models.CharField(max_length=317, unique=True, help_text="namespace:name")
    namespace = models.CharField(max_length=63)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    username = models.CharField(max_length=63, blank=True)
    server_name = models.CharField(max_length=63, blank=True)
    image = models.CharField(max_length=1024, blank=True)
    node_name = models.CharField(max_length=253, blank=True)
    cpu = models.BigIntegerField(default=0, help_text="Requested, in milli-CPU.")
    memory = models.BigIntegerField(default=0, help_text="Requested, in milli-bytes.")
    gpu = models.BigIntegerField(default=0, help_text="Requested GPUs (any */gpu resource), in milli-units.")
    phase = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)

    OBSERVED_FIELDS: tuple[str, ...] = (
        "namespace",
        "name",
        "uid",
        "username",
        "server_name",
        "image",
        "node_name",
        "cpu",
        "memory",
        "gpu",
        "phase",
        "started_at",
    )

    class Meta:
        ordering = ("ref",)
        verbose_name = "running notebook"

    def __str__(self) -> str:
        return self.ref


class ResourceQuota(models.Model):
    """A namespace's ResourceQuota: status.hard and status.used, as quantities."""

    ref = models.CharField(max_length=317, unique=True, help_text="namespace:name")
    namespace = models.CharField(max_length=63, db_index=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    hard = models.JSONField(default=dict, blank=True)
    used = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(null=True, blank=True, db_index=True)

    OBSERVED_FIELDS: tuple[str, ...] = ("namespace", "name", "uid", "hard", "used")

    class Meta:
        ordering = ("ref",)

    def __str__(self) -> str:
        return self.ref


class LimitRange(models.Model):
    """A namespace's LimitRange: spec.limits, with the apiserver's defaulting applied."""

    ref = models.CharField(max_length=317, unique=True, help_text="namespace:name")
    namespace = models.CharField(max_length=63, db_index=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    limits = models.JSONField(default=list, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(null=True, blank=True, db_index=True)

    OBSERVED_FIELDS: tuple[str, ...] = ("namespace", "name", "uid", "limits")

    class Meta:
        ordering = ("ref",)

    def __str__(self) -> str:
        return self.ref


class GuaranteePolicy(models.TextChoices):
    EQUAL = "equal", "Guarantee equals the limit"
    RATIO = "ratio", "Guarantee is a fraction of the limit"
    EXPLICIT = "explicit", "Guarantee is a fixed value"


class MachineType(Lifecycled):
    """A kind of node a notebook may ask for: where it runs, what it may use, and what it is guaranteed."""

    slug = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    order = models.IntegerField(default=0, help_text="Lower comes first in the spawn form.")
    enabled = models.BooleanField(default=True)

    node_selector = models.JSONField(
        default=dict, blank=True, help_text='Node labels the notebook needs, e.g. {"pool": "gpu"}.'
    )
    tolerations = models.JSONField(
        default=list,
        blank=True,
        help_text='Kubernetes tolerations, e.g. [{"key": "nvidia.com/gpu", "operator": "Exists", '
        '"effect": "NoSchedule"}].',
    )
    node_affinity = models.JSONField(
        default=dict,
        blank=True,
        help_text='Optional required node affinity: {"nodeSelectorTerms": [{"matchExpressions": '
        '[{"key": …, "operator": "In", "values": […]}]}]}.',
    )
    extended_resources = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extended resources and the counts a user may ask for, e.g. {"nvidia.com/gpu": [0, 1, 2]}.',
    )

    min_cpu = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True, help_text="vCPU")
    max_cpu = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True, help_text="vCPU")
    min_mem = models.PositiveIntegerField(null=True, blank=True, help_text="MB")
    max_mem = models.PositiveIntegerField(null=True, blank=True, help_text="MB")

    guarantee_policy = models.CharField(max_length=16, choices=GuaranteePolicy.choices, default=GuaranteePolicy.EQUAL)
    guarantee_ratio = models.DecimalField(
        max_digits=4, decimal_places=3, null=True, blank=True, help_text="For 'fraction': 0 < ratio ≤ 1."
    )
    cpu_guarantee = models.DecimalField(
        max_digits=6, decimal_places=2, null=True, blank=True, help_text="For 'fixed value': vCPU"
    )
    mem_guarantee = models.PositiveIntegerField(null=True, blank=True, help_text="For 'fixed value': MB")

    class Meta:
        ordering = ("order", "display_name")

    def __str__(self) -> str:
        return self.display_name

    @property
    def gpu_resources(self) -> list[str]:
        return sorted(self.extended_resources or {})

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for field, problems in (
            ("node_selector", node_selector_errors(self.node_selector)),
            ("tolerations", toleration_errors(self.tolerations)),
            ("node_affinity", node_affinity_errors(self.node_affinity)),
            ("extended_resources", _extended_resource_errors(self.extended_resources)),
        ):
            if problems:
                errors[field] = " ".join(problems)
        for low, high, unit in (("min_cpu", "max_cpu", "vCPU"), ("min_mem", "max_mem", "MB")):
            low_value, high_value = getattr(self, low), getattr(self, high)
            for name, value in ((low, low_value), (high, high_value)):
                if value is not None and value <= 0:
                    errors[name] = "Must be above zero."
            if low_value is not None and high_value is not None and low_value > high_value:
                errors[low] = f"The minimum ({low_value} {unit}) is above the maximum ({high_value} {unit})."
        errors.update(self._guarantee_errors())
        errors.update(self.lifecycle_errors())
        if errors:
            raise ValidationError(errors)

    def _guarantee_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.guarantee_policy == GuaranteePolicy.RATIO:
            if self.guarantee_ratio is None or not Decimal(0) < self.guarantee_ratio <= 1:
                errors["guarantee_ratio"] = "A guarantee fraction is above 0 and at most 1."
        elif self.guarantee_policy == GuaranteePolicy.EXPLICIT:
            if self.cpu_guarantee is None and self.mem_guarantee is None:
                errors["cpu_guarantee"] = "Give a CPU and/or memory guarantee for the 'fixed value' policy."
            if self.cpu_guarantee is not None and self.cpu_guarantee <= 0:
                errors["cpu_guarantee"] = "Must be above zero."
            if self.mem_guarantee is not None and self.mem_guarantee <= 0:
                errors["mem_guarantee"] = "Must be above zero."
            # A guarantee above the smallest allowed limit would make that size invalid in Kubernetes.
            if self.cpu_guarantee is not None and self.min_cpu is not None and self.cpu_guarantee > self.min_cpu:
                errors["cpu_guarantee"] = (
                    f"Above the minimum CPU ({self.min_cpu}): a guarantee may not exceed the limit."
                )
            if self.mem_guarantee is not None and self.min_mem is not None and self.mem_guarantee > self.min_mem:
                errors["mem_guarantee"] = (
                    f"Above the minimum memory ({self.min_mem} MB): a guarantee may not exceed the limit."
                )
        return errors

    def guarantees(self, *, cpu_limit: Decimal, mem_limit: int) -> tuple[Decimal, int]:
        """The CPU (vCPU) and memory (MB) guarantee for a notebook with these limits."""
        if self.guarantee_policy == GuaranteePolicy.RATIO and self.guarantee_ratio is not None:
            cpu = (cpu_limit * self.guarantee_ratio).quantize(Decimal("0.001"))
            return cpu, max(1, int(mem_limit * self.guarantee_ratio))
        if self.guarantee_policy == GuaranteePolicy.EXPLICIT:
            cpu = min(self.cpu_guarantee, cpu_limit) if self.cpu_guarantee is not None else cpu_limit
            mem = min(self.mem_guarantee, mem_limit) if self.mem_guarantee is not None else mem_limit
            return cpu, mem
        return cpu_limit, mem_limit


def _extended_resource_errors(value: object) -> list[str]:
    if not isinstance(value, dict):
        return [
            'Extended resources are a JSON object of resource name: [allowed counts], e.g. {"nvidia.com/gpu": [0, 1]}.'
        ]
    errors = []
    for name, counts in value.items():
        # Extended resources live outside kubernetes.io (that domain holds cpu, memory and the like).
        if not is_qualified_name(name) or "/" not in name or name.split("/")[0].endswith("kubernetes.io"):
            errors.append(f"{name!r} is not an extended resource name (domain/name, outside kubernetes.io).")
        elif (
            not isinstance(counts, list)
            or not counts
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        ):
            errors.append(f"The counts of {name!r} are a non-empty list of whole numbers, 0 or more.")
        elif len(set(counts)) != len(counts):
            errors.append(f"The counts of {name!r} repeat a number.")
    return errors


# Rows kept for the portal's own bookkeeping.
BOOKKEEPING_MODELS: tuple[type[models.Model], ...] = (SyncRound, InventoryGeneration)
# Capacity: what the cluster is running and may still run. These change with every pod that
# starts or stops, so the spawn form's snapshot is not drawn from them (bumping the generation
# for them would throw away every worker's snapshot at the cluster's churn rate), and they are
# not operator changes to record in the history.
CAPACITY_MODELS: tuple[type[models.Model], ...] = (
    ClusterNode,
    PodRequest,
    NodeUsage,
    ResourceQuota,
    LimitRange,
    NotebookPod,
)
