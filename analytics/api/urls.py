"""/api/v1/ routes of the analytics app (staff)."""

from django.urls import path

from . import views

app_name = "analytics"

urlpatterns = [
    path("staff/exports", views.ExportCreateApi.as_view(), name="staff-exports"),
    path("staff/exports/<uuid:pk>", views.ExportDetailApi.as_view(), name="staff-export"),
    path("staff/exports/<uuid:pk>/download", views.ExportDownloadApi.as_view(), name="staff-export-download"),
    path("staff/analytics/<slug:trial>/summary", views.TrialSummaryApi.as_view(), name="staff-summary"),
]
