"""Renders the spawn form that /options returns as ``html``.

The form is drawn in full on the server, in the state the user's remembered
(or default) choices describe, so it is usable before its script runs. The
script then only keeps it consistent as choices change (sections shown for the
chosen profile, accounts and volumes for the chosen namespace, presets).

Each offered kind (spawning/offers) draws its own section from its template,
in registry order, from the state its ``form`` returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.template.loader import render_to_string

from spawning.offers import KINDS


def render_options_form(data: dict[str, Any]) -> str:
    """The form's HTML for one user; every string in ``data`` is escaped by the templates."""
    return render_to_string("spawning/options_form.html", {"data": data, "form": form_state(data)})


def form_state(data: dict[str, Any]) -> dict[str, Any]:
    """What the templates need beyond ``data``: the initial choices, resolved against what is offered."""
    selected: dict[str, Any] = data.get("selected") or {}
    # What one kind resolved that a later one reads (the chosen profile, preset, namespace).
    shared: dict[str, Any] = {}
    sections: list[dict[str, Any]] = []
    form: dict[str, Any] = {
        "sections": sections,
        "last_synced_at": _when((data.get("inventory") or {}).get("last_synced_at")),
    }
    for kind in KINDS:
        own = kind.form(data, selected, shared)
        form.update(own)
        if kind.template:
            # ``own``: the kind's state, for a shared template such as spawning/offers/_choice.html.
            sections.append({"template": kind.template, "own": own})
    return form


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
