from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from optionsportal import health, metrics
from spawning.preview import spawn_form_preview

admin.site.site_header = "Options Portal"
admin.site.site_title = "Options Portal"
admin.site.index_title = "Notebook configuration"
# The portal has no public site: "View site" opens the spawn form preview instead of a 404.
admin.site.site_url = "/admin/preview/"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/preview/", spawn_form_preview, name="spawn-form-preview"),
    path("admin/", admin.site.urls),
    path("", include("spawning.urls")),
]
