from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from optionsportal import health

admin.site.site_header = "Options Portal"
admin.site.site_title = "Options Portal"
admin.site.index_title = "Notebook configuration"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("spawning.urls")),
]
