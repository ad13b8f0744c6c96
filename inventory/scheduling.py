"""Where a notebook may run: node selectors, tolerations and node affinity, as the scheduler reads them.

Pure functions on plain data (labels, taints, the JSON an operator typed), so
the admin's validation and the capacity figures agree with the scheduler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Taints with these effects keep a pod off a node unless it tolerates them.
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
TOLERATION_OPERATORS = ("Equal", "Exists")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
_TERM_KEYS = frozenset({"matchExpressions", "matchFields"})
_REQUIREMENT_KEYS = frozenset({"key", "operator", "values"})
# A qualified name with an optional DNS prefix, as label keys (and resource names) are.
_QUALIFIED_NAME = re.compile(
    r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def is_qualified_name(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 316 and bool(_QUALIFIED_NAME.match(value))


# --- What an operator may type ------------------------------------------------


def node_selector_errors(value: object) -> list[str]:
    if not isinstance(value, dict):
        return ["A node selector is a JSON object of label: value."]
    errors = []
    for key, label in value.items():
        if not is_qualified_name(key):
            errors.append(f"{key!r} is not a label key.")
        elif not isinstance(label, str) or not _LABEL_VALUE.match(label):
            errors.append(f"The value of {key!r} is not a label value (a string of at most 63 characters).")
    return errors


def toleration_errors(value: object) -> list[str]:
    """What is wrong with a list of tolerations, in the apiserver's terms."""
    if not isinstance(value, list):
        return ["Tolerations are a JSON list of objects."]
    errors = []
    for index, item in enumerate(value, 1):
        where = f"Toleration {index}"
        if not isinstance(item, dict):
            errors.append(f"{where} is not a JSON object.")
            continue
        unknown = sorted(set(item) - _TOLERATION_KEYS)
        if unknown:
            errors.append(f"{where} has unknown fields: {', '.join(unknown)}.")
        key = item.get("key", "")
        operator = item.get("operator", "Equal")
        effect = item.get("effect", "")
        if key and not is_qualified_name(key):
            errors.append(f"{where}: {key!r} is not a taint key.")
        if operator not in TOLERATION_OPERATORS:
            errors.append(f"{where}: operator must be Equal or Exists.")
        elif operator == "Exists" and item.get("value"):
            errors.append(f"{where}: an Exists toleration has no value.")
        elif operator == "Equal" and not key:
            errors.append(f"{where}: an Equal toleration needs a key (only Exists may leave it empty).")
        if effect and effect not in TAINT_EFFECTS:
            errors.append(f"{where}: effect must be one of {', '.join(TAINT_EFFECTS)} (or empty for all).")
        seconds = item.get("tolerationSeconds")
        if seconds is not None:
            if effect != "NoExecute":
                errors.append(f"{where}: tolerationSeconds applies only to the NoExecute effect.")
            if not isinstance(seconds, int) or isinstance(seconds, bool):
                errors.append(f"{where}: tolerationSeconds is a whole number.")
        if "value" in item and not isinstance(item["value"], str):
            errors.append(f"{where}: value is a string.")
    return errors


def node_affinity_errors(value: object) -> list[str]:
    """``{"nodeSelectorTerms": [...]}``: requiredDuringSchedulingIgnoredDuringExecution's shape."""
    if value in (None, {}):
        return []
    if not isinstance(value, dict) or set(value) != {"nodeSelectorTerms"}:
        return ['Node affinity is {"nodeSelectorTerms": [...]} (the required-during-scheduling form).']
    terms = value["nodeSelectorTerms"]
    if not isinstance(terms, list) or not terms:
        return ["nodeSelectorTerms is a non-empty list."]
    errors = []
    for index, term in enumerate(terms, 1):
        where = f"Term {index}"
        if not isinstance(term, dict) or not term or set(term) - _TERM_KEYS:
            errors.append(f"{where} is an object with matchExpressions and/or matchFields.")
            continue
        for field in ("matchExpressions", "matchFields"):
            for number, requirement in enumerate(term.get(field) or [], 1):
                errors.extend(
                    _requirement_errors(requirement, f"{where}, {field} {number}", fields=field == "matchFields")
                )
    return errors


def _requirement_errors(requirement: object, where: str, *, fields: bool) -> list[str]:
    if not isinstance(requirement, dict) or set(requirement) - _REQUIREMENT_KEYS:
        return [f"{where} is an object with key, operator and values."]
    key, operator, values = requirement.get("key"), requirement.get("operator"), requirement.get("values", [])
    errors = []
    if fields and key != "metadata.name":
        errors.append(f"{where}: the only field is metadata.name.")
    elif not fields and not is_qualified_name(key):
        errors.append(f"{where}: {key!r} is not a label key.")
    if operator not in SELECTOR_OPERATORS or (fields and operator not in ("In", "NotIn")):
        allowed = ("In", "NotIn") if fields else SELECTOR_OPERATORS
        errors.append(f"{where}: operator must be one of {', '.join(allowed)}.")
    elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        errors.append(f"{where}: values is a list of strings.")
    elif operator in ("In", "NotIn") and not values:
        errors.append(f"{where}: {operator} needs at least one value.")
    elif operator in ("Exists", "DoesNotExist") and values:
        errors.append(f"{where}: {operator} takes no values.")
    elif operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        errors.append(f"{where}: {operator} takes exactly one whole number.")
    return errors


# --- Matching nodes -----------------------------------------------------------


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    """Kubernetes' ``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taints(
    taints: Sequence[Mapping[str, str]], tolerations: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, str]]:
    """The taints that keep a pod with these tolerations off the node."""
    return [
        taint
        for taint in taints
        if taint.get("effect") in BLOCKING_EFFECTS and not any(tolerates(t, taint) for t in tolerations)
    ]


def _requirement_holds(requirement: Mapping[str, Any], value: str | None) -> bool:
    operator = requirement.get("operator")
    values = requirement.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None:
        try:
            number, bound = int(value), int(values[0])
        except (ValueError, IndexError):
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def affinity_matches(affinity: Mapping[str, Any] | None, *, node_name: str, labels: Mapping[str, str]) -> bool:
    """Terms are ORed; within a term every requirement must hold; no affinity matches every node."""
    terms = (affinity or {}).get("nodeSelectorTerms") or []
    if not terms:
        return True
    for term in terms:
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            # An empty term matches no objects, as in the scheduler.
            continue
        if all(_requirement_holds(r, labels.get(r.get("key", ""))) for r in expressions) and all(
            _requirement_holds(r, node_name) for r in fields
        ):
            return True
    return False


def selector_matches(node_selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in node_selector.items())
