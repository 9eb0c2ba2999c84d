"""/api/v1/ routes of the participants app (participant phone API and staff API)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
