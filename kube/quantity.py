"""Kubernetes resource quantities, parsed exactly.

A quantity is ``<signed number><suffix>``: a binary suffix (``Ki`` … ``Ei``), a
decimal one (``n u m k M G T P E``), or a decimal exponent (``e3``, ``E-2``),
as apimachinery's ``resource.Quantity`` reads it. Sums and comparisons are done
on whole milli-units, as the scheduler does with ``MilliValue``: ``0.5`` CPU is
500, ``1Gi`` of memory is 1,073,741,824,000. Finer values round up, as the
apiserver rounds them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))$"
)


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The exact value of a quantity (``"100m"`` → ``Decimal("0.1")``)."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        # Numbers in JSON come as floats; their shortest repr is what was written.
        return Decimal(repr(value))
    match = _QUANTITY.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise QuantityError(f"not a quantity: {value!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise QuantityError(f"not a quantity: {value!r}") from exc
    if match["binary"]:
        return number * _BINARY[match["binary"]]
    if match["exponent"] is not None:
        return number.scaleb(int(match["exponent"]))
    return number * _DECIMAL[match["decimal"] or ""]


def milli(value: str | int | float | Decimal) -> int:
    """The quantity in whole milli-units, rounded up."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def milli_map(values: Mapping[str, object] | None) -> dict[str, int]:
    """A resource list (``{"cpu": "2", "memory": "1Gi"}``) in milli-units; unreadable entries are left out."""
    result: dict[str, int] = {}
    for name, raw in (values or {}).items():
        try:
            result[str(name)] = milli(raw)  # type: ignore[arg-type]
        except QuantityError:
            continue
    return result
