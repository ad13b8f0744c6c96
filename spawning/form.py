"""Renders the spawn form that /options returns as ``html``."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string


def render_options_form(data: dict[str, Any]) -> str:
    """The form's HTML for one user; every string in ``data`` is escaped by the template."""
    return render_to_string("spawning/options_form.html", {"data": data})
