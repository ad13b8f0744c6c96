"""The operator preview: the spawn form exactly as a given user would get it from /options."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from spawning.form import render_options_form
from spawning.selectors import options_data

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


@staff_member_required
def spawn_form_preview(request: HttpRequest) -> HttpResponse:
    """GET draws the form for the user named in the query; POST (its Start button) shows what the hub would get."""
    form = PreviewForm(request.GET or None)
    options_html = ""
    submitted = ""
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
    context = {
        **admin.site.each_context(request),
        "title": "Spawn form preview",
        "form": form,
        "options_html": options_html,
        "submitted": submitted,
    }
    return render(request, "admin/spawning/preview.html", context)
