from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from trialsite.api.health import health
from trialsite.webapp import app_shell, service_worker

urlpatterns = [
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("trialsite.api.urls")),
    # The participant app (issue 10): the service worker at the top of its scope, then one shell for every path.
    path("app/sw.js", service_worker, name="app-sw"),
    re_path(r"^app/(?P<path>.*)$", app_shell, name="app"),
]

handler404 = "trialsite.api.errors.handler404"
handler500 = "trialsite.api.errors.handler500"
