"""Input and output shapes of the hub API, as the original hub sends and reads them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from spawning.offers import KINDS
from spawning.replies import OptionsData, PrespawnReply

# Longest value a form field may carry: well above any id (namespace:name is at most 317).
MAX_OPTION_LENGTH = 1000
# As many fields as Django lets a form-encoded body carry (DATA_UPLOAD_MAX_NUMBER_FIELDS); the form has a dozen.
MAX_OPTIONS = 1000


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _encodable(value: Any) -> bool:
    """JSON may carry lone surrogates (``"\\ud800"``), which no database or label can hold."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_encodable(v) for v in value)
    return True


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_OPTIONS,
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "maxLength": MAX_OPTION_LENGTH},
                {"type": "number"},
                {"type": "array", "items": {"type": "string", "maxLength": MAX_OPTION_LENGTH}, "maxItems": 1},
            ]
        },
        "example": {"profile": ["gaffer-pyspark"], "resources_cpu": ["0.5"]},
    }
)
class UserOptionsField(serializers.DictField):
    """The submitted spawn form: HTML form data (``{"cpu": ["0.5"]}``) or plain values.

    Single-element lists are unwrapped, as the original did; scalars are read
    as strings; anything else names the offending key.
    """

    default_error_messages = {
        "several": "'{name}' must be one value, not a list of {count}.",
        "nested": "'{name}' must be a string or a number.",
        "too_long": "'{name}' is longer than {max} characters.",
        "control": "'{name}' must not contain control characters.",
        "bad_key": "A form field name must be 1 to 100 printable characters.",
        "too_many": "The form has more than {max} fields.",
    }

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict) and len(data) > MAX_OPTIONS:
            self.fail("too_many", max=MAX_OPTIONS)
        raw = super().to_internal_value(data)
        cleaned: dict[str, str] = {}
        for key, value in raw.items():
            # PostgreSQL cannot store NUL, and no form field name or value holds a control character.
            if not 0 < len(key) <= 100 or _has_control(key):
                self.fail("bad_key")
            if isinstance(value, list):
                if len(value) > 1:
                    self.fail("several", name=key, count=len(value))
                value = value[0] if value else ""
            if value is None:
                value = ""
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str | int | float):
                self.fail("nested", name=key)
            text = str(value)
            if len(text) > MAX_OPTION_LENGTH:
                self.fail("too_long", name=key, max=MAX_OPTION_LENGTH)
            if _has_control(text):
                self.fail("control", name=key)
            cleaned[str(key)] = text.strip()
        return cleaned


class IdentitySerializer(serializers.Serializer):
    """Who the hub asks for: the user, their server (empty = default server) and groups."""

    username = serializers.CharField(max_length=255, trim_whitespace=False)
    server_name = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False)
    groups = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, default=list, max_length=1000
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        broken = {field: ["Not valid Unicode text."] for field, value in attrs.items() if not _encodable(value)}
        if broken:
            raise serializers.ValidationError(broken)
        return attrs

    def validate_username(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The username must not be blank.")
        if _has_control(value):
            raise serializers.ValidationError("The username must not contain control characters.")
        return value

    def validate_server_name(self, value: str) -> str:
        if _has_control(value):
            raise serializers.ValidationError("The server name must not contain control characters.")
        return value


class OptionsInputSerializer(IdentitySerializer):
    """``POST /options``: draw the spawn form for this user's server."""

    pod_name = serializers.CharField(max_length=253, required=False, allow_blank=True, default="")
    default_namespace = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")


class PrespawnInputSerializer(IdentitySerializer):
    """``POST /prespawn``: validate the submitted form and provision the notebook's objects."""

    pod_name = serializers.CharField(max_length=253, allow_blank=True)
    default_namespace = serializers.CharField(max_length=63, allow_blank=True)
    user_options = UserOptionsField(child=serializers.JSONField(), allow_empty=True)
    profile = serializers.CharField(max_length=63, allow_blank=True)
    reply_version = serializers.IntegerField(
        min_value=1,
        max_value=2,
        required=False,
        default=1,
        help_text=(
            "1: only the original server's reply keys. 2: also `image` and `kubespawner_override`, "
            "for a hub that applies them (the spawner in hub/)."
        ),
    )
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Validate and answer with the reply plus `objects`, the manifests a real call would apply; "
            "nothing is created and no spawn is recorded. With a cluster configured the apiserver checks "
            "every manifest (server-side dry run)."
        ),
    )


class PoststopInputSerializer(IdentitySerializer):
    """``POST /poststop``: the notebook stopped; delete what /prespawn made for it."""

    pod_name = serializers.CharField(max_length=253, required=False, allow_blank=True, default="")
    default_namespace = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")


# --- Output shapes: every reply is serialized through these ------------------


class _InventoryOut(serializers.Serializer):
    last_synced_at = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField()


class _OptionsIdentityOut(serializers.Serializer):
    username = serializers.CharField()
    server_name = serializers.CharField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        # An optional key (spawning.offers.base.Out) with nothing offered is left out.
        return {key: value for key, value in data.items() if value or self.fields[key].required}


class _NoticeOut(serializers.Serializer):
    field = serializers.CharField(help_text="The form field whose remembered choice was retired")
    old = serializers.CharField(help_text="The retired choice")
    new = serializers.CharField(help_text="Its successor, now preselected")
    message = serializers.CharField()


# The /options data (spawning.replies.OptionsData): who it is for, what each offered kind
# offers under its reply keys (spawning/offers), the inventory's freshness and the preselection.
OptionsDataSerializer = type(
    "OptionsDataSerializer",
    (_OptionsIdentityOut,),
    {
        **{key: out.field(key) for kind in KINDS for key, out in kind.output_fields().items()},
        "inventory": _InventoryOut(),
        "selected": serializers.DictField(child=serializers.CharField(), help_text="Preselected form values"),
        # Only when a remembered choice was retired and moved to its successor.
        "notices": _NoticeOut(many=True, required=False),
    },
)


class OptionsOutputSerializer(OptionsDataSerializer):  # type: ignore[valid-type,misc]
    """The form's HTML and the data it was drawn from: only what this user may use."""

    html = serializers.CharField(help_text="The spawn form")


class _ResourcesOut(serializers.Serializer):
    cpu_guarantee = serializers.FloatField()
    cpu_limit = serializers.FloatField()
    mem_guarantee = serializers.CharField()
    mem_limit = serializers.CharField()
    storage_capacity = serializers.CharField()


class KubespawnerOverrideOut(serializers.Serializer):
    """KubeSpawner trait → value. The traits named here come from the chosen machine type;
    any other key is one of the profile's extra overrides, as its operator typed it
    (spawning/schema.py declares those as additional properties)."""

    node_selector = serializers.DictField(child=serializers.CharField(), required=False)
    tolerations = serializers.ListField(child=serializers.DictField(), required=False)
    node_affinity_required = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="NodeSelectorTerms, all required."
    )
    extra_resource_guarantees = serializers.DictField(child=serializers.CharField(), required=False)
    extra_resource_limits = serializers.DictField(child=serializers.CharField(), required=False)
    cpu_guarantee = serializers.FloatField(required=False)
    cpu_limit = serializers.FloatField(required=False)
    mem_guarantee = serializers.CharField(required=False)
    mem_limit = serializers.CharField(required=False)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        named = {key: value for key, value in super().to_representation(instance).items() if value is not None}
        return {**instance.extra, **named}


class _Omitting(serializers.Serializer):
    """Leaves out the keys whose value is None, as the original left out what did not apply."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {key: value for key, value in super().to_representation(instance).items() if value is not None}


class PrespawnOutputSerializer(_Omitting):
    """The KubeSpawner overrides the hub applies (keys as hub/optionsportal_hub/reply.py reads them)."""

    namespace = serializers.CharField()
    image = serializers.CharField(required=False, help_text="Only with reply_version 2.")
    resources = _ResourcesOut()
    env = serializers.DictField(child=serializers.CharField())
    labels = serializers.DictField(child=serializers.CharField())
    storage_extra_labels = serializers.DictField(child=serializers.CharField())
    volumes = serializers.ListField(child=serializers.DictField())
    volumeMounts = serializers.ListField(child=serializers.DictField())
    serviceAccount = serializers.CharField(required=False)
    pvc_name = serializers.CharField(required=False, help_text="An existing claim of the user's.")
    kubespawner_override = KubespawnerOverrideOut(
        required=False,
        help_text="Only with reply_version 2: the machine type's and the profile's extra KubeSpawner traits.",
    )
    objects = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Only for a dry run: the manifests a real call would apply (Secret values redacted).",
    )
    dry_run = serializers.ChoiceField(
        choices=["server", "local"],
        required=False,
        help_text=(
            "Only for a dry run: `server` when the apiserver checked every manifest (server-side dry run), "
            "`local` when no cluster is configured and the manifests were only built."
        ),
    )


class PrespawnOutputV1Serializer(PrespawnOutputSerializer):
    """``reply_version`` 1: the original contract's keys only.

    A hub on that contract mutates its spawner from the reply, and keys it never knew
    could set traits it does not expect.
    """

    # None removes an inherited field (DRF); the stubs do not know that.
    image = None  # type: ignore[assignment]
    kubespawner_override = None  # type: ignore[assignment]


# One instance of each, reused: a serializer deep-copies its declared fields every time one
# is made, which for the nested /options data cost about 2 ms of a 6 ms request at the
# bench's inventory (bench/portal_bench.py, in-process, 2026-12-01). ``to_representation``
# only reads the fields, so one instance serves every request and thread.
_OPTIONS_DATA = OptionsDataSerializer()
_PRESPAWN_OUTPUT = {1: PrespawnOutputV1Serializer(), 2: PrespawnOutputSerializer()}


def options_output(reply: OptionsData) -> dict[str, Any]:
    """The /options data as sent (without the form's HTML)."""
    return _OPTIONS_DATA.to_representation(reply)


def prespawn_output(reply: PrespawnReply, *, reply_version: int) -> dict[str, Any]:
    """The reply as sent for the hub's ``reply_version``."""
    return _PRESPAWN_OUTPUT[2 if reply_version >= 2 else 1].to_representation(reply)


class _ObjectOut(serializers.Serializer):
    kind = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()


class PoststopOutputSerializer(serializers.Serializer):
    """What was deleted for the stopped server."""

    deleted = _ObjectOut(many=True)


class ErrorSerializer(serializers.Serializer):
    """Every error: a code, and either the fields at fault or a message."""

    error = serializers.CharField()
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Serializer.fields at run time; the stubs cannot see that.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Every refused field and its reasons; a nested field's path is joined with dots (`groups.1`).",
    )
    detail = serializers.CharField(required=False)
