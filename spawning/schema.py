"""How the hub API's authentication, and what DRF cannot say of a reply, appear in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension


class HubTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: token <secret>`` (JupyterHub's convention; ``Bearer`` works too)."""

    target_class = "spawning.auth.HubTokenAuthentication"
    name = "hubToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`token <hub token>` or `Bearer <hub token>`.",
        }


class KubespawnerOverrideScheme(OpenApiSerializerExtension):
    """The machine type's traits are declared; a profile's extra overrides are any other trait."""

    target_class = "spawning.serializers.KubespawnerOverrideOut"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = {"description": "A profile's extra KubeSpawner trait, as the operator set it."}
        return schema
