"""The offer registry: every kind a user can be offered and a notebook can be given, in form order.

The form, the /options data and its schema, validation, provisioning and the
/prespawn reply iterate over ``KINDS``; a kind is declared in one module
(see spawning/offers/base.py and docs/architecture.md, "How to add an offered kind").
The order matters: validation runs in it, and later kinds read what earlier ones
decided (the profile, the namespace, the numbers; the machine type narrows the
CPU and memory bounds before the resources kind reads the numbers).
"""

from __future__ import annotations

from spawning.offers import (
    data_source,
    gaffer,
    hdfs,
    machine_type,
    namespace,
    profile,
    profile_option,
    resources,
    service_account,
    spark,
    volume,
)
from spawning.offers.base import NumberField, OfferedKind

KINDS: tuple[OfferedKind, ...] = (
    profile.KIND,
    machine_type.KIND,
    profile_option.KIND,
    resources.KIND,
    namespace.KIND,
    service_account.KIND,
    volume.KIND,
    hdfs.KIND,
    gaffer.KIND,
    spark.KIND,
    data_source.KIND,
)

NUMBER_FIELDS: tuple[NumberField, ...] = tuple(field for kind in KINDS for field in kind.number_fields)
CHOICE_FIELDS: tuple[str, ...] = tuple(field for kind in KINDS for field in kind.choice_fields)
