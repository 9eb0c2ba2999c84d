"""Self-blinding kits in the participant admin: "envelope recorded: yes/no" per period for every staff user, the
printable kit sheet for unblinded roles only (it maps label sets to conditions: arm-bearing)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from trialsite.protocol.services import ProtocolError, protocol_current

from ..blinding import may_see_arms
from ..kit_sheet import kit_sheet
from ..selectors import kit_periods

KIT_FIELDSET = ("Self-blinding kit", {"fields": ["envelopes_recorded"]})


def _self_blinding(participant) -> bool:
    try:
        return protocol_current(participant.trial).self_blinding is not None
    except ProtocolError:
        return False


class KitAdminMixin:
    """Mixed into ParticipantAdmin."""

    def kit_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:pk>/kit-sheet/",
                self.admin_site.admin_view(self.kit_sheet_view),
                name=f"{info[0]}_{info[1]}_kit_sheet",
            )
        ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and _self_blinding(obj):
            fieldsets.append(KIT_FIELDSET)
        return fieldsets

    @admin.display(description="Envelope recorded")
    def envelopes_recorded(self, obj):
        periods = kit_periods(participant=obj)
        if not periods:
            return "—"
        return format_html_join(
            " · ",
            "<span data-period='{}'>period {}: {}</span>",
            ((p["period"], p["period"], "yes" if p["recorded"] else "no") for p in periods),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        participant = self.get_object(request, object_id)
        if participant is not None and may_see_arms(request.user) and _self_blinding(participant):
            extra_context["kit_sheet_url"] = reverse("admin:participants_participant_kit_sheet", args=[participant.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    def kit_sheet_view(self, request, pk: int):
        """The printable kit sheet: unblinded roles only (blinded staff: 403, whatever their site)."""
        if not may_see_arms(request.user):
            raise PermissionDenied
        participant = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, participant):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Self-blinding kit of {participant.study_id}",
            "participant": participant,
            "sheet": kit_sheet(participant=participant),
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/participants/participant/kit_sheet.html", context)


__all__ = ["KitAdminMixin"]
