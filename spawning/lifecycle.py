"""What the lifecycle (inventory/lifecycle.py) means for the spawn form and /prespawn, for every offered kind.

A kind with lifecycled rows (profiles, machine types) does three things, each a
line or two:

- ``load``: keep ``retired_choices(rows, what=…, key=…)`` beside its rows, and leave
  retired rows out of what it offers (``offered(row)``); a deprecated row's item
  carries ``deprecation_notice(row)``;
- ``successors``: answer ``{field: loaded.retired}``; the shared ``preselect``
  (spawning/offers/base.py) then moves a remembered retired choice to its
  successor, with a notice on the form naming both;
- ``validate``: ``if refuse_retired(v, field, key, loaded.retired): return``
  before its own checks, so /prespawn of a retired choice is a 400 naming the successor.

Images are not chosen on their own: a profile whose image is retired starts the
successor image (``image_notice`` says so beside the profile).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inventory.lifecycle import ImageState, Lifecycle, retired_to_successor

if TYPE_CHECKING:
    from spawning.offers.base import Validation


@dataclass(frozen=True)
class Retired:
    """A retired choice and the one that replaces it (the end of its successor chain)."""

    what: str
    old: str
    new: str
    old_label: str
    new_label: str
    message: str


@dataclass(frozen=True)
class Notice:
    """Told on the spawn form: a remembered choice that was retired, and what is chosen instead."""

    field: str
    old: str
    new: str
    message: str


def offered(row: Any) -> bool:
    """Whether the form may offer a lifecycled row (before enabled, access and the rest)."""
    return row.lifecycle != Lifecycle.RETIRED


def retired_choices(
    rows: Iterable[Any], *, what: str, key: Callable[[Any], str], label: Callable[[Any], str] = str
) -> dict[str, Retired]:
    """Each retired row's form value → what replaces it. Rows whose successors break are left out."""
    return {
        key(row): Retired(
            what=what,
            old=key(row),
            new=key(end),
            old_label=label(row),
            new_label=label(end),
            message=row.lifecycle_message,
        )
        for row, end in _with_successor(list(rows))
    }


def _with_successor(rows: list[Any]) -> list[tuple[Any, Any]]:
    ends = retired_to_successor(rows)
    return [(row, ends[row.pk]) for row in rows if row.pk in ends]


def deprecation_notice(row: Any) -> str:
    """The text beside a deprecated row on the form ("" for an active or retired one)."""
    if row.lifecycle != Lifecycle.DEPRECATED:
        return ""
    return f"Deprecated: {row.lifecycle_message}" if row.lifecycle_message else "Deprecated."


def image_notice(state: ImageState) -> str:
    """The text beside a profile whose image is deprecated or retired ("" otherwise)."""
    if state.deprecated:
        return f"Image {state.image} is deprecated" + (f": {state.message}" if state.message else ".")
    if state.retired and state.successor:
        text = f"Image {state.image} is retired; notebooks start {state.successor} instead."
        return f"{text} {state.message}" if state.message else text
    return ""


def moved_choice(field: str, retired: Retired) -> Notice:
    message = (
        f"The {retired.what} '{retired.old_label}' you chose last time is retired; "
        f"'{retired.new_label}' is chosen instead."
    )
    return Notice(
        field=field,
        old=retired.old,
        new=retired.new,
        message=f"{message} {retired.message}" if retired.message else message,
    )


def retired_refusal(retired: Retired) -> str:
    return f"The {retired.what} '{retired.old}' is retired; use '{retired.new}' instead."


def refuse_retired(v: Validation, field: str, key: str, retired: Mapping[str, Retired]) -> bool:
    """Refuse a retired choice on /prespawn, naming its successor; True when refused."""
    moved = retired.get(key)
    if moved is None:
        return False
    v.refuse(field, retired_refusal(moved))
    return True
