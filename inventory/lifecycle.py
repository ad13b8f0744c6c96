"""The lifecycle rule of what operators offer: profiles, machine types and images.

Each is *active*, *deprecated* (still offered, with the operator's message beside
it on the form) or *retired* (no longer offered; what pointed at it moves to its
successor). A retired row's successor may itself be retired: the chain is
followed to the first row that is not, and a chain that loops (or ends without
a successor) is refused when an operator saves it, so every retired row leads
somewhere.

Pure functions over rows the caller already read, shared by the models'
validation, the offered kinds (spawning/lifecycle.py) and the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from django.db import models


class Lifecycle(models.TextChoices):
    ACTIVE = "active", "Active"
    DEPRECATED = "deprecated", "Deprecated (still offered, with a message)"
    RETIRED = "retired", "Retired (replaced by its successor)"


T = TypeVar("T")


def chain_end(
    start: T | None,
    *,
    retired: Callable[[T], bool],
    successor: Callable[[T], T | None],
    identity: Callable[[T], object] = id,
) -> T | None:
    """The first row down the successor chain from ``start`` (itself included) that is not retired.

    None when the chain breaks (a retired row without a successor) or loops.
    """
    seen: set[object] = set()
    row = start
    while row is not None and retired(row):
        if identity(row) in seen:
            return None
        seen.add(identity(row))
        row = successor(row)
    return row


class LifecycleRow(Protocol):
    pk: object
    lifecycle: str
    successor_id: object


R = TypeVar("R", bound=LifecycleRow)


def retired_to_successor(rows: Iterable[R]) -> dict[object, R]:
    """Each retired row's pk → the row that replaces it (its chain's end); rows whose chain breaks are left out."""
    by_pk = {row.pk: row for row in rows}
    replaced: dict[object, R] = {}
    for row in by_pk.values():
        if row.lifecycle != Lifecycle.RETIRED:
            continue
        end = chain_end(
            row,
            retired=lambda r: r.lifecycle == Lifecycle.RETIRED,
            successor=lambda r: by_pk.get(r.successor_id),
        )
        if end is not None:
            replaced[row.pk] = end
    return replaced


# --- Images: a profile's image is a string, so operators describe images by pattern ---


def is_pattern(pattern: str) -> bool:
    return "*" in pattern


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    # Only * is special: image references hold dots, and [ ] ? never appear in them.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def image_matches(pattern: str, image: str) -> bool:
    """An exact reference, or a pattern where ``*`` stands for anything (``repo:2023-*``, ``repo:*``)."""
    if not is_pattern(pattern):
        return pattern == image
    return _compiled(pattern).fullmatch(image) is not None


@dataclass(frozen=True)
class ImageRule:
    """One operator's entry for images: what matches, its state, message and successor image."""

    pattern: str
    lifecycle: str
    message: str
    successor_image: str

    @property
    def specificity(self) -> tuple[int, int]:
        # An exact reference wins over every pattern; a longer pattern over a shorter one.
        return (0 if is_pattern(self.pattern) else 1, len(self.pattern.replace("*", "")))


@dataclass(frozen=True)
class ImageState:
    """What the rules say of one image: its state and message, and (retired) the image that replaces it."""

    image: str
    lifecycle: str
    message: str
    # For a retired image, the end of its successor chain ("" when the chain breaks).
    successor: str = ""

    @property
    def deprecated(self) -> bool:
        return self.lifecycle == Lifecycle.DEPRECATED

    @property
    def retired(self) -> bool:
        return self.lifecycle == Lifecycle.RETIRED


class ImageRules:
    """Every image entry, answering for any image the most specific entry that matches it."""

    def __init__(self, rules: Iterable[ImageRule]) -> None:
        self.rules = tuple(sorted(rules, key=lambda rule: (rule.specificity, rule.pattern), reverse=True))

    @classmethod
    def of(cls, rows: Iterable[Any]) -> ImageRules:
        """From ImageLifecycle rows (or anything with their four attributes)."""
        return cls(
            ImageRule(
                pattern=row.pattern,
                lifecycle=row.lifecycle,
                message=row.message,
                successor_image=row.successor_image,
            )
            for row in rows
        )

    def rule_for(self, image: str) -> ImageRule | None:
        return next((rule for rule in self.rules if image_matches(rule.pattern, image)), None)

    def successor_chain(self, image: str) -> list[str] | None:
        """The images from ``image`` down to the first that is not retired; None when it breaks or loops."""
        chain = [image]
        while True:
            rule = self.rule_for(chain[-1])
            if rule is None or rule.lifecycle != Lifecycle.RETIRED:
                return chain
            if not rule.successor_image or rule.successor_image in chain or len(chain) > 1000:
                return None
            chain.append(rule.successor_image)

    def state(self, image: str) -> ImageState:
        rule = self.rule_for(image)
        if rule is None:
            return ImageState(image=image, lifecycle=Lifecycle.ACTIVE, message="")
        successor = ""
        if rule.lifecycle == Lifecycle.RETIRED:
            chain = self.successor_chain(image)
            successor = chain[-1] if chain else ""
        return ImageState(image=image, lifecycle=rule.lifecycle, message=rule.message, successor=successor)

    def __bool__(self) -> bool:
        return bool(self.rules)
