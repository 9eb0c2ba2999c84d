"""Permission classes for the participant (phone) API and the staff API."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from participants.selectors import participant_for_user


class IsParticipant(BasePermission):
    """The bearer token belongs to a participant's user. Sets ``request.participant`` for the view.

    Unauthenticated requests are answered 401 (not_authenticated) by DRF; staff tokens get 403.
    """

    message = "This endpoint is for participants' phones."

    def has_permission(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return False
        participant = getattr(request, "participant", None)
        if participant is None:
            participant = participant_for_user(user)
            if participant is None:
                return False
            request.participant = participant
        return True


class IsStaff(BasePermission):
    """An authenticated user who is not a participant (roles and sites are checked by the views)."""

    message = "This endpoint is for staff."

    def has_permission(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not (user.is_staff or user.is_superuser):
            return False
        from participants.models import Participant

        return not Participant.objects.filter(user=user).exists()
