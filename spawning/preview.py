"""The operator preview: the spawn form exactly as a given user would get it from /options.

Its Start button runs the same dry run as ``POST /prespawn`` with ``"dry_run": true``:
what the hub would be told and the manifests that would be applied, with nothing made.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kube.client import KubeError
from spawning.errors import ChoiceRefused
from spawning.form import render_options_form
from spawning.selectors import options_data
from spawning.serializers import PrespawnInputSerializer
from spawning.services import prespawn_dry_run

# Django's own field, added by the preview page's form; the hub never sends it.
_NOT_USER_OPTIONS = frozenset({"csrfmiddlewaretoken"})


class PreviewForm(forms.Form):
    """Who to preview the form for: what the hub would send to /options, plus the user's groups."""

    username = forms.CharField(max_length=255)
    groups = forms.CharField(max_length=2000, required=False, help_text="JupyterHub groups, separated by commas.")
    server_name = forms.CharField(max_length=255, required=False, help_text="Empty for the default server.")
    default_namespace = forms.CharField(
        max_length=63, required=False, help_text="The hub's default namespace for this user."
    )

    def clean_groups(self) -> list[str]:
        raw: str = self.cleaned_data.get("groups") or ""
        return [group.strip() for group in raw.split(",") if group.strip()]


def _dry_run(cleaned: dict[str, Any], user_options: dict[str, list[str]]) -> tuple[str, str]:
    """(the dry run's answer as JSON, or "") and (why it was refused, or "")."""
    username = cleaned["username"]
    server_name = cleaned["server_name"]
    # KubeSpawner's default pod name; the preview has no hub to ask.
    pod_name = f"jupyter-{username}" + (f"-{server_name}" if server_name else "")
    serializer = PrespawnInputSerializer(
        data={
            "username": username,
            "server_name": server_name,
            "groups": cleaned["groups"],
            "pod_name": pod_name,
            "default_namespace": cleaned["default_namespace"],
            "profile": (user_options.get("profile") or [""])[0],
            "user_options": user_options,
            "reply_version": 2,
            "dry_run": True,
        }
    )
    if not serializer.is_valid():
        return "", json.dumps(serializer.errors, indent=2, sort_keys=True)
    values = serializer.validated_data
    try:
        answer = prespawn_dry_run(
            username=values["username"],
            server_name=values["server_name"],
            pod_name=values["pod_name"],
            default_namespace=values["default_namespace"],
            profile=values["profile"],
            user_options=values["user_options"],
            groups=values["groups"],
            reply_version=values["reply_version"],
        )
    except ChoiceRefused as exc:
        return "", f"{exc.field}: {exc.reason}"
    except KubeError as exc:
        return "", f"The cluster refused the dry run: {exc}"
    return json.dumps(answer, indent=2, sort_keys=True), ""


@staff_member_required
def spawn_form_preview(request: HttpRequest) -> HttpResponse:
    """GET draws the form for the user named in the query; POST (its Start button) dry-runs the spawn."""
    form = PreviewForm(request.GET or None)
    options_html = ""
    submitted = ""
    dry_run = ""
    refused = ""
    if form.is_valid():
        data = options_data(
            username=form.cleaned_data["username"],
            server_name=form.cleaned_data["server_name"],
            groups=form.cleaned_data["groups"],
            default_namespace=form.cleaned_data["default_namespace"],
        )
        options_html = render_options_form(data)
        if request.method == "POST":
            user_options = {name: request.POST.getlist(name) for name in request.POST if name not in _NOT_USER_OPTIONS}
            submitted = json.dumps(user_options, indent=2, sort_keys=True)
            dry_run, refused = _dry_run(form.cleaned_data, user_options)
    context = {
        **admin.site.each_context(request),
        "title": "Spawn form preview",
        "form": form,
        "options_html": options_html,
        "submitted": submitted,
        "dry_run": dry_run,
        "refused": refused,
    }
    return render(request, "admin/spawning/preview.html", context)
