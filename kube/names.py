"""DNS-safe names and label values for what /prespawn creates, for any username and server name.

Hub usernames may hold capitals, dots, ``@``, spaces or any Unicode, and be of any
length; Kubernetes wants lowercase DNS-1123 labels of at most 63 characters. The
mapping must also be *injective*: two different users (or servers) must never get
the same object name or label value, or one user's /prespawn would overwrite, and
their /poststop delete, another user's objects.

The rule that guarantees it:

- A value that is already *plain* is used as it is. Plain means lowercase ASCII
  letters and digits in hyphen-separated runs, with no ``--`` (and, for the user
  part of a composite name, no hyphen at all, so ``jo`` + server ``smith`` and user
  ``jo-smith`` cannot meet).
- Anything else becomes a readable slug, then ``--``, then 12 hex digits of the
  SHA-256 of the raw value(s). Plain values never contain ``--``, and hashed ones
  always do, so the two forms cannot collide; two hashed forms collide only if
  SHA-256 prefixes do (48 bits), which no user can arrange on purpose for another
  user's name without a preimage attack.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

# The labels /prespawn gives notebook pods, through the reply. Our own keys, not KubeSpawner's
# hub.jupyter.org/username, whose value KubeSpawner escapes its own way. Here, at the cluster
# boundary, because both sides read them: spawning sets them, the pod watch selects by them.
POD_LABEL_USER = "optionsportal.io/notebook-user"
POD_LABEL_SERVER = "optionsportal.io/notebook-server"
POD_LABEL_ROLE = "optionsportal.io/role"
ROLE_NOTEBOOK = "notebook"
ROLE_EXECUTOR = "spark-executor"

MAX_LABEL = 63
HASH_LENGTH = 12

_PLAIN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PLAIN_NO_HYPHEN = re.compile(r"^[a-z0-9]+$")
_DNS1035_PLAIN = re.compile(r"^[a-z](?:[a-z0-9]*(?:-[a-z0-9]+)*)?$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")

DNS1123_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z](?:[-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def digest(*values: str) -> str:
    """A short hash of the raw value(s); JSON keeps ("a", "bc") apart from ("ab", "c")."""
    raw = json.dumps(list(values), ensure_ascii=True).encode("ascii")
    return hashlib.sha256(raw).hexdigest()[:HASH_LENGTH]


def slug(value: str) -> str:
    """A readable, lossy lowercase form: accents dropped, other characters become hyphens."""
    ascii_value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return _NOT_SLUG.sub("-", ascii_value.lower()).strip("-")


def _hashed(readable: str, hashed: str, room: int) -> str:
    """``<readable, cut to fit>--<hash>`` within ``room`` characters."""
    keep = max(room - len(hashed) - 2, 1)
    readable = readable[:keep].strip("-") or "x"
    return f"{readable}--{hashed}"


def label_value(value: str) -> str:
    """A DNS-safe label value (≤ 63) that no other input maps to; "" stays "" (the default server)."""
    if value == "" or (len(value) <= MAX_LABEL and _PLAIN.match(value)):
        return value
    return _hashed(slug(value), digest(value), MAX_LABEL)


def owner_label_value(value: str) -> str:
    """A label value for a home volume's owner: the raw name when Kubernetes allows it, as the original did.

    Volumes the original labelled with raw names (``Jo.Smith``) keep matching.
    Raw values with ``--`` are hashed like the rest, so a raw name can never
    spell out another user's hashed form.
    """
    if len(value) <= MAX_LABEL and LABEL_VALUE.match(value) and "--" not in value:
        return value
    return label_value(value)


def object_name(prefix: str, username: str, server_name: str = "") -> str:
    """``<prefix>-<user>[-<server>]`` as a DNS-1123 label, distinct for every (user, server)."""
    user_plain = bool(_PLAIN_NO_HYPHEN.match(username))
    server_plain = server_name == "" or bool(_PLAIN.match(server_name))
    plain = f"{prefix}-{username}" + (f"-{server_name}" if server_name else "")
    if user_plain and server_plain and len(plain) <= MAX_LABEL:
        return plain
    readable = slug(username) + (f"-{slug(server_name)}" if server_name else "")
    return f"{prefix}-" + _hashed(readable, digest(username, server_name), MAX_LABEL - len(prefix) - 1)


def service_name(pod_name: str) -> str:
    """A Service name (DNS-1035: starts with a letter, ≤ 63) from the notebook pod's name."""
    if len(pod_name) <= MAX_LABEL and _DNS1035_PLAIN.match(pod_name):
        return pod_name
    readable = slug(pod_name)
    if not readable[:1].isalpha():
        readable = f"pod-{readable}"
    return _hashed(readable, digest(pod_name), MAX_LABEL)


def expand_template(template: str, *, username: str, server_name: str) -> str:
    """Fill a profile's ``{{USERNAME}}`` / ``{{SERVERNAME}}`` placeholders with safe forms."""
    return template.replace("{{USERNAME}}", label_value(username)).replace("{{SERVERNAME}}", label_value(server_name))
