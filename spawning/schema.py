"""How the hub API's authentication appears in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
