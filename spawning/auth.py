"""The hub authenticates with a shared token: ``Authorization: token <secret>``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request


@dataclass(frozen=True)
class Hub:
    """The caller, once authenticated; ``anonymous`` in the migration mode."""

    anonymous: bool = False
    is_authenticated: bool = True


class HubTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[Hub, None] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        expected = settings.OPTIONS_PORTAL_HUB_TOKEN or ""
        if not header:
            if settings.OPTIONS_PORTAL_ALLOW_ANONYMOUS_HUB:
                return Hub(anonymous=True), None
            return None
        keyword, _, presented = header.partition(" ")
        if keyword.lower() not in self.keywords or not presented.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: token <hub token>'.")
        if not expected:
            raise exceptions.AuthenticationFailed("The portal has no hub token configured.")
        if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise exceptions.AuthenticationFailed("The hub token is not valid.")
        return Hub(), None

    def authenticate_header(self, request: Request) -> str:
        return 'token realm="options-portal"'


class IsHub(permissions.BasePermission):
    message = "The hub must authenticate with 'Authorization: token <hub token>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, Hub)
