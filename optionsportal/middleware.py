"""Request id, log context and metrics for every request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from optionsportal.logs import endpoint_var, request_id_var, user_var
from optionsportal.metrics import REQUEST_SECONDS, REQUESTS

logger = logging.getLogger("optionsportal.request")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Label values must stay few: any other method a client invents counts as "other".
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestContextMiddleware:
    """Tags the request with an id (the caller's X-Request-Id when sane), counts and logs it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        tokens = (request_id_var.set(request_id), user_var.set(""), endpoint_var.set(request.path))
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            endpoint = _endpoint(request)
            method = request.method if request.method in _METHODS else "other"
            REQUESTS.labels(endpoint=endpoint, method=method, status=str(response.status_code)).inc()
            REQUEST_SECONDS.labels(endpoint=endpoint).observe(elapsed)
            response["X-Request-Id"] = request_id
            if endpoint not in {"healthz", "readyz", "metrics", "static"}:
                logger.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={"status": response.status_code, "duration_ms": round(elapsed * 1000, 1)},
                )
            return response
        finally:
            request_id_var.reset(tokens[0])
            user_var.reset(tokens[1])
            endpoint_var.reset(tokens[2])


def _endpoint(request: HttpRequest) -> str:
    """A bounded label: the URL pattern's name, never the raw path (which users control)."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name:
        return match.url_name
    if request.path.startswith("/static/"):
        return "static"
    if request.path.startswith("/admin/"):
        return "admin"
    return "other"
