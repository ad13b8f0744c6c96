"""Every error the hub API returns is JSON naming the field and the reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from kube.client import KubeError, KubeForbidden, KubeUnavailable


class ChoiceRefused(APIException):
    """Choices the user may not make, each reported against its form field (all of them at once)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, field: str, reason: str, *, more: Mapping[str, list[str]] | None = None) -> None:
        self.fields: dict[str, list[str]] = {field: [reason]}
        for name, reasons in (more or {}).items():
            self.fields.setdefault(name, []).extend(reason for reason in reasons if reason not in self.fields[name])
        # The first refusal, for a caller that reports one.
        self.field = field
        self.reason = reason
        super().__init__(self.fields)

    @classmethod
    def of(cls, refusals: Mapping[str, list[str]]) -> ChoiceRefused:
        """Every refused field with its reasons, in the order they were found; ``refusals`` must not be empty."""
        (field, reasons), *_ = refusals.items()
        return cls(field, reasons[0], more=refusals)

    @property
    def summary(self) -> str:
        """One line for the spawn record: ``field: reason; field: reason``."""
        return "; ".join(f"{name}: {reason}" for name, reasons in self.fields.items() for reason in reasons)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, KubeError):
        if exc.status in {400, 409, 422}:
            # The apiserver rejected what we built (say, a profile's ingress host that is
            # not a DNS name): retrying cannot help, an operator must fix the configuration.
            return Response(
                {
                    "error": "cluster_rejected",
                    "detail": f"The cluster rejected the notebook's configuration; ask an operator. ({exc})",
                },
                status=status.HTTP_502_BAD_GATEWAY,
            )
        if isinstance(exc, KubeForbidden):
            message = f"The portal is not allowed to do this in the cluster: {exc}"
        elif isinstance(exc, KubeUnavailable):
            message = f"The Kubernetes API is unavailable; try again shortly. ({exc})"
        else:
            message = f"The cluster could not do this now; try again shortly. ({exc})"
        return Response({"error": "cluster_unavailable", "detail": message}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data and len(data) == 1:
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": str(data["detail"])}
    elif isinstance(data, dict | list):
        response.data = {"error": "invalid", "fields": data}
    return response
