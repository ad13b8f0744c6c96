"""The inventory generation: one number that changes with every write the spawn form reads.

Operators' edits arrive through the ORM and are caught by signals; the sync
writes with ``bulk_create``/``bulk_update`` (which send none) and bumps the
generation itself, in the same transaction. Readers read the generation
*before* what they cache, so a cache can only ever be newer than its key.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.apps import apps
from django.db import connection, models
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from inventory.models import (
    AccessRule,
    ClusterNode,
    InventoryGeneration,
    LimitRange,
    NodeUsage,
    NotebookPod,
    PodRequest,
    ResourceQuota,
    SyncRound,
)

GENERATION_PK = 1


# Not what the form is drawn from: bookkeeping, and the capacity rows, which change with
# every pod that starts or stops (bumping for them would throw away every worker's
# snapshot at the cluster's churn rate).
_NOT_FORM_INPUT: tuple[type[models.Model], ...] = (
    SyncRound,
    InventoryGeneration,
    ClusterNode,
    PodRequest,
    ResourceQuota,
    LimitRange,
    NodeUsage,
    NotebookPod,
)


def watched_models() -> tuple[type[models.Model], ...]:
    """Everything the spawn form and validation are drawn from: every inventory model but those above.

    Derived, so that a kind added to the inventory is watched without being listed here.
    """
    return tuple(model for model in apps.get_app_config("inventory").get_models() if model not in _NOT_FORM_INPUT)


def bump_inventory_generation() -> None:
    """Mark the inventory changed; call inside the transaction that wrote the change.

    An upsert, so a database without the row (flushed, or never written) still works.
    The row lock it takes is held until the writer commits, which orders writers.
    """
    table = InventoryGeneration._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, number, token, changed_at) VALUES (%s, 1, %s, %s) "  # noqa: S608
            f"ON CONFLICT (id) DO UPDATE SET number = {table}.number + 1, "
            "token = EXCLUDED.token, changed_at = EXCLUDED.changed_at",
            # Hex, not a UUID object: SQLite cannot bind one, and PostgreSQL reads either.
            [GENERATION_PK, uuid.uuid4().hex, timezone.now()],
        )


def current_inventory_generation() -> tuple[int, uuid.UUID] | None:
    """The generation as committed (or as this transaction wrote it); None if never bumped."""
    row = InventoryGeneration.objects.filter(pk=GENERATION_PK).values_list("number", "token").first()
    return (row[0], row[1]) if row is not None else None


def _on_change(sender: Any, **kwargs: Any) -> None:
    # m2m_changed fires before and after; only the after means the links changed.
    action = kwargs.get("action")
    if action is not None and not str(action).startswith("post_"):
        return
    bump_inventory_generation()


def connect_signals() -> None:
    """Bump on every ORM save or delete of a watched model and every access-rule link change."""
    for model in watched_models():
        post_save.connect(_on_change, sender=model, dispatch_uid=f"inventory-generation-save-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"inventory-generation-delete-{model.__name__}")
    for relation in AccessRule._meta.many_to_many:
        through = getattr(AccessRule, relation.name).through
        m2m_changed.connect(_on_change, sender=through, dispatch_uid=f"inventory-generation-m2m-{relation.name}")
