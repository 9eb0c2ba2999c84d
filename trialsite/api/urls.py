"""/api/v1/: each app contributes its own routes (participants, surveys, analytics)."""

from django.urls import include, path

urlpatterns = [
    path("", include("participants.api.urls")),
    path("", include("surveys.api.urls")),
    path("", include("analytics.api.urls")),
]
