"""The import_config run in progress, if any: what its writes are attributed to."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.models import ImportRun


@dataclass(frozen=True)
class ImportContext:
    run: ImportRun
    # The Django user named by --user, when there is one; None for an operating-system user.
    user: Any

    @property
    def change_reason(self) -> str:
        return self.run.change_reason


current_import: ContextVar[ImportContext | None] = ContextVar("current_import", default=None)
