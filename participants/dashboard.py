"""Extension point of the participant dashboard: the participants changelist and change page in the admin.

Apps that know more about a participant (surveys: adherence, last answer, next due, missed in a row, and the
survey sections of the change page) register a DashboardExtension in their AppConfig.ready();
participants.admin.ParticipantAdmin asks this registry. participants never imports them (dependency
direction), and no app replaces participants' ModelAdmin.

An empty registry is allowed: the dashboard then shows participants' own columns only (nothing is revealed
or decided by an extension).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DashboardExtension:
    # queryset -> queryset with the annotations the columns and filters read (a constant number of queries).
    annotate: Callable[[Any], Any]
    # list_display entries (callables decorated with django.contrib.admin.display), after the study day...
    columns: Sequence[Callable] = ()
    # ...and after the open-alerts column.
    trailing_columns: Sequence[Callable] = ()
    # list_filter entries, after participants' own.
    filters: Sequence[Any] = ()
    # (request, participant) -> [{"title": str, "html": str}], the change page's sections.
    sections: Callable[[Any, Any], list[dict]] | None = None


_extensions: dict[str, DashboardExtension] = {}


def register_dashboard_extension(name: str, extension: DashboardExtension) -> None:
    _extensions[name] = extension


def dashboard_extensions() -> list[DashboardExtension]:
    return list(_extensions.values())
