"""The project's URLs plus the benchmark's baseline: a trivial Django JSON view behind the same middleware."""

from django.http import JsonResponse
from django.urls import path

from trialsite.urls import handler404, handler500  # noqa: F401
from trialsite.urls import urlpatterns as project_urls


def bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare), *project_urls]
