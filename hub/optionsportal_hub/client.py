"""Calls from the hub to the portal's /options, /prespawn and /poststop, and what their errors mean to a user."""

from __future__ import annotations

import json
from typing import Any

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class OptionsPortalError(web.HTTPError):
    """The portal refused or could not serve a request; ``jupyterhub_message`` is what the user reads.

    JupyterHub shows ``jupyterhub_message`` on the spawn form, on the spawn-pending page and on
    its error page instead of a traceback, so the text here is written for the person spawning.
    """

    def __init__(self, message: str, *, status_code: int = 503, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(status_code, "%s", message)
        self.jupyterhub_message = message
        self.fields = fields or {}


def _fields_text(fields: Any) -> str:
    if not isinstance(fields, dict):
        return str(fields)
    parts = []
    for name, reasons in fields.items():
        if isinstance(reasons, list | tuple):
            reason = "; ".join(str(r) for r in reasons)
        elif isinstance(reasons, dict):
            reason = _fields_text(reasons)
        else:
            reason = str(reasons)
        parts.append(f"{name}: {reason}")
    return ", ".join(parts)


def error_for_reply(status: int, body: bytes, *, what: str) -> OptionsPortalError:
    """Turn a non-200 portal reply into a message a user can act on."""
    try:
        data: Any = json.loads(body or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    detail = str(data.get("detail") or "").strip()
    if status == 400 and isinstance(data.get("fields"), dict):
        fields = data["fields"]
        return OptionsPortalError(f"Your choices were refused: {_fields_text(fields)}", status_code=400, fields=fields)
    if status == 400:
        return OptionsPortalError(f"Your choices were refused: {detail or 'bad request'}", status_code=400)
    if status in (401, 403):
        return OptionsPortalError(
            f"The hub could not authenticate with the options portal while {what} (HTTP {status}). "
            "Ask an administrator to check the hub's options portal token.",
            status_code=503,
        )
    if status == 503:
        return OptionsPortalError(
            f"The cluster is unavailable while {what}; try again shortly. {detail}".strip(), status_code=503
        )
    return OptionsPortalError(
        f"The options portal failed while {what} (HTTP {status}). {detail}".strip(), status_code=502
    )


class PortalClient:
    """A small JSON client for the portal, with the hub's token."""

    def __init__(self, *, base_url: str, token: str = "", timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    async def post(self, path: str, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
        """POST JSON; return the JSON reply or raise OptionsPortalError."""
        if not self.base_url:
            raise OptionsPortalError(
                "The options portal is not configured on this hub (OptionsPortalSpawner.options_portal_url)."
            )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        request = HTTPRequest(
            f"{self.base_url}{path}",
            method="POST",
            headers=headers,
            body=json.dumps(payload),
            connect_timeout=min(self.timeout, 10.0),
            request_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (HTTPClientError, OSError, TimeoutError) as exc:
            raise OptionsPortalError(
                f"The options portal cannot be reached while {what}; try again shortly. ({exc})"
            ) from exc
        if response.code == 599:
            # tornado reports connection failures and timeouts as code 599
            raise OptionsPortalError(
                f"The options portal cannot be reached while {what}; try again shortly. ({response.error})"
            )
        if response.code != 200:
            raise error_for_reply(response.code, response.body, what=what)
        try:
            data = json.loads(response.body or b"{}")
        except ValueError as exc:
            raise OptionsPortalError(f"The options portal sent an unreadable reply while {what}.") from exc
        if not isinstance(data, dict):
            raise OptionsPortalError(f"The options portal sent an unexpected reply while {what}.")
        return data
