"""Permission classes of the whole API: a participant's phone, or staff (roles and sites are checked by the
views and services). Who is a participant is told to the spine by the participants app
(trialsite.principals)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from trialsite import principals


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
            participant = principals.participant_for_user(user)
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
        return not principals.is_participant(user)
