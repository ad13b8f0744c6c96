"""JSON-lines logging with the request id, user and endpoint of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
user_var: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="")
endpoint_var: contextvars.ContextVar[str] = contextvars.ContextVar("endpoint", default="")

# Attributes every LogRecord has; anything else came from `extra=` and is logged as a field.
_RECORD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Never written to a log line, whatever a caller passes in `extra=`.
_SECRET_KEYS = {"token", "authorization", "password", "secret", "secret_key", "hub_token"}


def bind_user(username: str) -> None:
    """Name the notebook user the current request is about, for every log line it writes."""
    user_var.set(username)


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp each record with the request context when it is made, in the request's own thread."""
    record = _base_factory(*args, **kwargs)
    for key, var in (("request_id", request_id_var), ("user", user_var), ("endpoint", endpoint_var)):
        value = var.get()
        if value and not hasattr(record, key):
            setattr(record, key, value)
    return record


def install_record_factory() -> None:
    if logging.getLogRecordFactory() is not _record_with_context:
        logging.setLogRecordFactory(_record_with_context)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("request_id", request_id_var), ("user", user_var), ("endpoint", endpoint_var)):
            value = getattr(record, key, "") or var.get()
            if value:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key.startswith("_"):
                continue
            entry[key] = "[redacted]" if key.lower() in _SECRET_KEYS else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
