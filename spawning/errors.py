"""Every error the hub API returns is JSON naming the field and the reason.

The shape is ``{"error": code, "detail": message}`` or ``{"error": "invalid",
"fields": {field: [reasons]}}``. Nested fields are flattened with dots
(``groups.0``, ``user_options``), so ``fields`` is always one level deep, as
the OpenAPI schema declares it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from kube.client import KubeError, KubeForbidden, KubeUnavailable

logger = logging.getLogger(__name__)


class ChoiceRefused(APIException):
    """Choices the user may not make; each reported against its form field."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, field: str, reason: str, *, more: Mapping[str, list[str]] | None = None) -> None:
        # The first refusal, for callers that report one; ``refusals`` holds them all.
        self.field = field
        self.reason = reason
        self.refusals: dict[str, list[str]] = {field: [reason]}
        for other, reasons in (more or {}).items():
            self.refusals.setdefault(other, []).extend(r for r in reasons if r not in self.refusals[other])
        super().__init__(self.refusals)

    @classmethod
    def of(cls, refusals: Mapping[str, list[str]]) -> ChoiceRefused:
        field, reasons = next(iter(refusals.items()))
        return cls(field, reasons[0], more=refusals)

    def summary(self) -> str:
        return "; ".join(f"{field}: {' '.join(reasons)}" for field, reasons in self.refusals.items())


def _flat(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors (``{"groups": {"0": [...]}}``) as one level (``{"groups.0": [...]}``)."""
    if isinstance(errors, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(errors, list) and any(isinstance(item, Mapping | list) for item in errors):
        # A list of child serializers' errors: one entry per child, empty where it was fine.
        flat = {}
        for index, item in enumerate(errors):
            if item:
                flat.update(_flat(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    reasons = errors if isinstance(errors, list) else [errors]
    return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(reason) for reason in reasons]}


def _error(code: str, detail: str, status_code: int) -> Response:
    return Response({"error": code, "detail": detail}, status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, KubeError):
        if exc.status in {400, 409, 422}:
            # The apiserver rejected what we built (say, a profile's ingress host that is
            # not a DNS name): retrying cannot help, an operator must fix the configuration.
            return _error(
                "cluster_rejected",
                f"The cluster rejected the notebook's configuration; ask an operator. ({exc})",
                status.HTTP_502_BAD_GATEWAY,
            )
        if isinstance(exc, KubeForbidden):
            message = f"The portal is not allowed to do this in the cluster: {exc}"
        elif isinstance(exc, KubeUnavailable):
            message = f"The Kubernetes API is unavailable; try again shortly. ({exc})"
        else:
            message = f"The cluster could not do this now; try again shortly. ({exc})"
        return _error("cluster_unavailable", message, status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, OperationalError | InterfaceError):
        # Connection-level failures only (refused, killed, timed out): a bug such as an
        # IntegrityError stays a 500. Services read and lock before they apply anything
        # and answer success once they have, so this answer means nothing was made.
        logger.warning("database unavailable: %s", exc)
        return _error(
            "database_unavailable",
            "The portal's database is unavailable; nothing was changed, retrying is safe.",
            status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return _error(
            "too_large",
            f"The request body is larger than the portal accepts ({limit} bytes).",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return _error(
            "too_many_fields",
            f"The request has more form fields than the portal accepts ({limit}).",
            status.HTTP_400_BAD_REQUEST,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data and len(data) == 1:
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": str(data["detail"])}
    elif isinstance(data, dict | list):
        response.data = {"error": "invalid", "fields": _flat(data)}
    return response
