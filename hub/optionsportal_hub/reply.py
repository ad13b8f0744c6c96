"""The keys of Options Portal's replies this package reads: the portal's ``/api/schema/`` documents them.

The portal's test suite checks these against the serializers the portal sends its
replies through (``PrespawnOutput``, ``OptionsOutput``), so the two cannot drift.
"""

from __future__ import annotations

# POST /options
HTML = "html"
PROFILES = "profiles"
PROFILE_SLUG = "slug"
PROFILE_IMAGE = "image"

# POST /prespawn (``reply_version`` 2; version 1 has neither IMAGE nor KUBESPAWNER_OVERRIDE)
NAMESPACE = "namespace"
IMAGE = "image"
RESOURCES = "resources"
ENV = "env"
LABELS = "labels"
STORAGE_EXTRA_LABELS = "storage_extra_labels"
VOLUMES = "volumes"
VOLUME_MOUNTS = "volumeMounts"
SERVICE_ACCOUNT = "serviceAccount"
PVC_NAME = "pvc_name"
KUBESPAWNER_OVERRIDE = "kubespawner_override"

PRESPAWN_KEYS = (
    NAMESPACE,
    IMAGE,
    RESOURCES,
    ENV,
    LABELS,
    STORAGE_EXTRA_LABELS,
    VOLUMES,
    VOLUME_MOUNTS,
    SERVICE_ACCOUNT,
    PVC_NAME,
    KUBESPAWNER_OVERRIDE,
)
# The keys of ``resources``: each sets the KubeSpawner trait of the same name.
RESOURCE_KEYS = ("cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit", "storage_capacity")
# The KubeSpawner traits ``kubespawner_override`` names for a machine type (besides a
# profile's own extra overrides); each sets the trait of the same name.
OVERRIDE_KEYS = (
    "node_selector",
    "tolerations",
    "node_affinity_required",
    "extra_resource_guarantees",
    "extra_resource_limits",
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee",
    "mem_limit",
)
