from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from spawning import views

urlpatterns = [
    path("options", views.OptionsView.as_view(), name="options"),
    path("prespawn", views.PrespawnView.as_view(), name="prespawn"),
    path("poststop", views.PoststopView.as_view(), name="poststop"),
    # The schema is public: it describes the API, and holds no data.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="api-schema",
    ),
]
