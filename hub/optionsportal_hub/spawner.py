"""A KubeSpawner whose spawn form and per-notebook setup come from Options Portal.

Only public KubeSpawner/JupyterHub hooks are used:

- ``options_form`` (a callable JupyterHub awaits) fetches the form from ``POST /options``;
- ``options_from_form`` keeps the submitted form data as it is (lists of strings);
- ``load_user_options()``, which KubeSpawner documents as the place for subclasses to apply
  user options and calls at the start of a spawn, before it starts watching the namespace
  and builds the PVC and pod, calls ``POST /prespawn`` and sets public traits from the reply;
- ``stop()`` calls ``POST /poststop`` once KubeSpawner has deleted the pod.

A notebook may run in a namespace chosen on the form. With ``enable_user_namespaces`` off
(the default, and what this class expects) KubeSpawner keys its pod watch on
``self.namespace`` and starts one watch per namespace in use, after ``load_user_options()``
has run, and it remembers the namespace in the server's state, so ``poll()`` and ``stop()``
after a hub restart look in the right place.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, CaselessStrEnum, Float, Unicode, default

from optionsportal_hub import reply as reply_keys
from optionsportal_hub.client import OptionsPortalError, PortalClient

# Traits a spawn may change; each start begins again from their configured values, so
# volumes appended for one spawn are not appended again on the next.
APPLIED_TRAITS = (
    "namespace",
    "image",
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee",
    "mem_limit",
    "storage_capacity",
    "environment",
    "extra_labels",
    "service_account",
    "pvc_name",
    "storage_extra_labels",
    "volumes",
    "volume_mounts",
    # A machine type's placement and extended resources (reply_keys.OVERRIDE_KEYS).
    "node_selector",
    "tolerations",
    "node_affinity_required",
    "extra_resource_guarantees",
    "extra_resource_limits",
)

RESOURCE_TRAITS = reply_keys.RESOURCE_KEYS


def keep_form_data(formdata: dict[str, Any]) -> dict[str, Any]:
    """``user_options`` = the form data unchanged: every value a list of strings.

    Uploaded files (``<name>_file``) are left out: the portal's form has none and they
    would not survive JSON.
    """
    return {
        key: [str(v) for v in values] if isinstance(values, list | tuple) else values
        for key, values in formdata.items()
        if not key.endswith("_file")
    }


def first_value(value: Any) -> Any:
    """A form field's value: ``["x"]`` → ``"x"``; scalars as they are."""
    if isinstance(value, list | tuple):
        return value[0] if value else ""
    return value


def literal(value: Any) -> Any:
    """Escape braces so KubeSpawner's template expansion leaves portal-given strings as they are.

    KubeSpawner runs ``str.format`` with the user's properties over env, labels, volumes and
    mounts; a value such as a JSON env var would otherwise fail or be rewritten.
    """
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    return value


def with_added(current: Any, added: list[dict[str, Any]], *, prefix: str) -> Any:
    """Append to a KubeSpawner list-or-dict trait (``volumes``, ``volume_mounts``) without mutating it."""
    if isinstance(current, dict):
        merged = dict(current)
        for item in added:
            merged[f"{prefix}{item.get('name') or item.get('mountPath') or len(merged)}"] = item
        return merged
    return [*(current or []), *added]


def both_required(current: Any, added: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Required node affinity that holds only where both the hub's and the portal's do.

    NodeSelectorTerms are ORed, so appending would loosen both; each of the hub's terms
    is joined (ANDed) with each of the portal's instead.
    """
    configured = [current[key] for key in sorted(current)] if isinstance(current, dict) else list(current or [])
    if not configured:
        return list(added)
    return [
        {
            key: [*(mine.get(key) or []), *(theirs.get(key) or [])]
            for key in ("matchExpressions", "matchFields")
            if mine.get(key) or theirs.get(key)
        }
        for mine in configured
        for theirs in added
    ]


class OptionsPortalSpawner(KubeSpawner):
    """KubeSpawner that asks Options Portal for the spawn form and for what each notebook gets."""

    options_portal_url = Unicode(
        help="Base URL of the portal, e.g. http://options-portal.jhub.svc:8000 (env OPTIONS_PORTAL_URL).",
    ).tag(config=True)

    options_portal_token = Unicode(
        help="The shared hub token the portal expects (env OPTIONS_PORTAL_HUB_TOKEN).",
    ).tag(config=True)

    options_portal_timeout = Float(
        30.0, help="Seconds to wait for the portal; /prespawn creates cluster objects before it answers."
    ).tag(config=True)

    options_portal_request_shape = CaselessStrEnum(
        ["portal", "original"],
        default_value="portal",
        help="""What the hub sends.

        'portal': the token, the user's JupyterHub groups, and /poststop on stop.
        'original': exactly what the original options server's hub config sent (no token,
        no groups, nothing on stop); the portal accepts it only with
        OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB=true. For a migration period only.
        """,
    ).tag(config=True)

    options_portal_poststop = Bool(
        True, help="Call /poststop after the pod is gone (ignored with the 'original' request shape)."
    ).tag(config=True)

    # KubeSpawner traits this class merges into, typed for the checker: KubeSpawner has no
    # annotations. Bare annotations make no class attribute, so the traits stay as they are.
    environment: dict[str, Any]
    extra_labels: dict[str, str]
    storage_extra_labels: dict[str, str]
    volumes: list[dict[str, Any]] | dict[str, dict[str, Any]]
    volume_mounts: list[dict[str, Any]] | dict[str, dict[str, Any]]
    tolerations: list[dict[str, Any]] | dict[str, dict[str, Any]]
    node_affinity_required: list[dict[str, Any]] | dict[str, dict[str, Any]]

    @default("options_portal_url")
    def _options_portal_url_from_env(self) -> str:
        return os.environ.get("OPTIONS_PORTAL_URL", "")

    @default("options_portal_token")
    def _options_portal_token_from_env(self) -> str:
        return os.environ.get("OPTIONS_PORTAL_HUB_TOKEN", "")

    @default("options_form")
    def _options_form_from_portal(self) -> Callable[..., Any]:
        return self.fetch_options_form

    @default("options_from_form")
    def _options_from_form_keeps_data(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return keep_form_data

    @default("apply_user_options")
    def _user_options_applied_in_load_user_options(self) -> Callable[..., None]:
        # JupyterHub's hook runs before start(); KubeSpawner applies options in load_user_options(),
        # which knows the namespace in time for its pod watch, so that is where the portal is called.
        return _applied_later

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The configured values, before load_state or any spawn changes them.
        self.portal_baseline: dict[str, Any] = {name: copy.deepcopy(getattr(self, name)) for name in APPLIED_TRAITS}

    # --- talking to the portal ------------------------------------------------------

    @property
    def original_shape(self) -> bool:
        return self.options_portal_request_shape == "original"

    @property
    def portal(self) -> PortalClient:
        return PortalClient(
            base_url=self.options_portal_url,
            token="" if self.original_shape else self.options_portal_token,
            timeout=self.options_portal_timeout,
        )

    @property
    def server_label(self) -> str:
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    @property
    def default_namespace(self) -> str:
        return str(self.portal_baseline["namespace"])

    def user_group_names(self) -> list[str]:
        return sorted(group.name for group in getattr(self.user, "groups", []) or [])

    def identity(self) -> dict[str, Any]:
        """Who and which server a request is about."""
        return {
            "username": self.user.name,
            "server_name": self.name or "",
            "pod_name": self.pod_name,
            "default_namespace": self.default_namespace,
        }

    def options_request(self) -> dict[str, Any]:
        payload = self.identity()
        if not self.original_shape:
            payload["groups"] = self.user_group_names()
        return payload

    def prespawn_request(self, user_options: dict[str, Any], profile: str) -> dict[str, Any]:
        payload = {**self.identity(), "user_options": user_options, "profile": profile}
        if not self.original_shape:
            payload["groups"] = self.user_group_names()
            # Ask for the image and the profile's extra overrides in the reply too.
            payload["reply_version"] = 2
        return payload

    async def fetch_options_form(self, spawner: Any = None) -> str:
        """The spawn form's HTML from ``POST /options`` (JupyterHub calls this with the spawner)."""
        reply = await self.portal.post("/options", self.options_request(), what="loading the spawn form")
        html = reply.get(reply_keys.HTML)
        if not isinstance(html, str) or not html.strip():
            raise OptionsPortalError("The options portal sent no spawn form.")
        return html

    # --- spawning -----------------------------------------------------------------------

    async def load_user_options(self) -> None:
        """Apply the user's choices: the hub's own profile override, then the portal's reply.

        KubeSpawner calls this first thing in a spawn. The portal's profiles take the place of
        KubeSpawner's ``profile_list`` form, so the parent's profile_list handling is not used;
        a ``profile_list`` configured on the hub still contributes its ``kubespawner_override``
        for the chosen slug, as the original deployment's hub config did.
        """
        self.restore_baseline()
        user_options = dict(self.user_options or {})
        profile = str(first_value(user_options.get("profile")) or "")
        await self.apply_hub_profile(profile)
        self.log.info("Asking the options portal to prepare %s (profile %r)", self.server_label, profile)
        reply = await self.portal.post(
            "/prespawn", self.prespawn_request(user_options, profile), what="preparing your server"
        )
        if not reply.get(reply_keys.IMAGE):
            # A portal that does not name the image in its reply: take the profile's from the form data.
            image = await self.profile_image(profile)
            if image:
                reply = {**reply, reply_keys.IMAGE: image}
        self.apply_prespawn_reply(reply)

    def restore_baseline(self) -> None:
        for name, value in self.portal_baseline.items():
            setattr(self, name, copy.deepcopy(value))
        self.update_dns_name()

    def update_dns_name(self) -> None:
        self.dns_name = self.dns_name_template.format(namespace=self.namespace, name=self.pod_name)

    async def apply_hub_profile(self, slug: str) -> None:
        profile_list = self.profile_list
        if callable(profile_list):
            profile_list = await _maybe_await(profile_list(self))
        if isinstance(profile_list, dict):
            profile_list = [profile_list[key] for key in sorted(profile_list)]
        for entry in profile_list or []:
            if slug and slug in (entry.get("slug"), entry.get("display_name")):
                self.apply_overrides(entry.get("kubespawner_override") or {})
                return

    def apply_overrides(self, overrides: dict[str, Any]) -> None:
        """Set traits like a ``kubespawner_override``: callables are called, dicts merged."""
        for name, value in overrides.items():
            if not self.has_trait(name):
                self.log.warning("Ignoring unknown KubeSpawner trait %r in an override", name)
                continue
            if callable(value):
                value = value(self)
            current = getattr(self, name)
            if isinstance(value, dict) and isinstance(current, dict):
                value = {**current, **value}
            setattr(self, name, value)

    def apply_prespawn_reply(self, reply: dict[str, Any]) -> None:
        """Apply /prespawn's reply through public KubeSpawner traits."""
        overrides = reply.get(reply_keys.KUBESPAWNER_OVERRIDE)
        if isinstance(overrides, dict):
            overrides = dict(overrides)
            tolerations = overrides.pop("tolerations", None)
            required = overrides.pop("node_affinity_required", None)
            self.apply_overrides(overrides)
            if isinstance(tolerations, list):
                # Added to the hub's own (a chart's user-node toleration must stay).
                self.tolerations = with_added(self.tolerations, tolerations, prefix="optionsportal-")
            if isinstance(required, list) and required:
                self.node_affinity_required = both_required(self.node_affinity_required, required)
        image = reply.get(reply_keys.IMAGE)
        if image:
            self.image = str(image)
        if reply.get(reply_keys.NAMESPACE):
            self.namespace = str(reply[reply_keys.NAMESPACE])
            self.update_dns_name()
        resources = reply.get(reply_keys.RESOURCES) or {}
        for name in RESOURCE_TRAITS:
            if resources.get(name) not in (None, ""):
                setattr(self, name, resources[name])
        if reply.get(reply_keys.ENV):
            self.environment = {**self.environment, **literal(dict(reply[reply_keys.ENV]))}
        if reply.get(reply_keys.LABELS):
            self.extra_labels = {**self.extra_labels, **literal(dict(reply[reply_keys.LABELS]))}
        if reply.get(reply_keys.SERVICE_ACCOUNT):
            self.service_account = literal(str(reply[reply_keys.SERVICE_ACCOUNT]))
        if reply.get(reply_keys.PVC_NAME):
            self.pvc_name = str(reply[reply_keys.PVC_NAME])
        if reply.get(reply_keys.STORAGE_EXTRA_LABELS):
            self.storage_extra_labels = {
                **self.storage_extra_labels,
                **literal(dict(reply[reply_keys.STORAGE_EXTRA_LABELS])),
            }
        if reply.get(reply_keys.VOLUMES):
            self.volumes = with_added(self.volumes, literal(list(reply[reply_keys.VOLUMES])), prefix="optionsportal-")
        if reply.get(reply_keys.VOLUME_MOUNTS):
            self.volume_mounts = with_added(
                self.volume_mounts, literal(list(reply[reply_keys.VOLUME_MOUNTS])), prefix="optionsportal-"
            )

    async def profile_image(self, slug: str) -> str:
        """The chosen profile's image, from fresh form data (the form shown may be old)."""
        if not slug:
            return ""
        data = await self.portal.post("/options", self.options_request(), what="looking up your profile")
        for entry in data.get(reply_keys.PROFILES) or []:
            if (
                isinstance(entry, dict)
                and entry.get(reply_keys.PROFILE_SLUG) == slug
                and entry.get(reply_keys.PROFILE_IMAGE)
            ):
                return str(entry[reply_keys.PROFILE_IMAGE])
        return ""

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self.original_shape or not self.options_portal_poststop:
            return
        payload = {**self.identity(), "namespace": self.namespace}
        try:
            await self.portal.post("/poststop", payload, what="cleaning up after your server")
        except OptionsPortalError as exc:
            # The pod is gone; what is left the portal's sweep removes later. Stopping must not fail.
            self.log.warning("Options portal /poststop for %s failed: %s", self.server_label, exc.jupyterhub_message)


class OriginalShapeSpawner(OptionsPortalSpawner):
    """Speaks exactly like the original options server's hub config, for a migration period."""

    @default("options_portal_request_shape")
    def _original_shape(self) -> str:
        return "original"


def _applied_later(spawner: Any, user_options: dict[str, Any]) -> None:
    return None


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value
