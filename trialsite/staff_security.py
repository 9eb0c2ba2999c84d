"""Staff sign-in auditing: logins, logouts, failures and lock-outs become StaffLoginEvent rows.

Connected in TrialsiteConfig.ready(). Recording never blocks a login: the row is written in the
caller's transaction (a failed login has no transaction of its own to roll back).
"""

from __future__ import annotations

from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver

from . import principals


def _request_meta(request) -> dict:
    if request is None:
        return {}
    meta = getattr(request, "META", {}) or {}
    address = meta.get("REMOTE_ADDR") or None
    return {
        "ip_address": address,
        "user_agent": (meta.get("HTTP_USER_AGENT") or "")[:255],
        "path": (getattr(request, "path", "") or "")[:255],
    }


def staff_login_event_record(*, kind: str, request=None, user=None, username: str = ""):
    from .models import StaffLoginEvent

    if user is not None and not username:
        username = user.get_username()
    event = StaffLoginEvent(
        kind=kind,
        user=user if user is not None and user.pk else None,
        username=(username or "")[:150],
        **_request_meta(request),
    )
    event.full_clean()
    event.save()
    return event


def _has_participant(user) -> bool:
    # The participants app tells the spine who is a participant (trialsite.principals).
    return principals.is_participant(user)


@receiver(auth_signals.user_logged_in, dispatch_uid="trialsite_staff_login")
def _on_login(sender, request, user, **kwargs):
    if not _has_participant(user):
        staff_login_event_record(kind="login", request=request, user=user)


@receiver(auth_signals.user_logged_out, dispatch_uid="trialsite_staff_logout")
def _on_logout(sender, request, user, **kwargs):
    if user is not None and not _has_participant(user):
        staff_login_event_record(kind="logout", request=request, user=user)


@receiver(auth_signals.user_login_failed, dispatch_uid="trialsite_staff_login_failed")
def _on_login_failed(sender, credentials, request=None, **kwargs):
    staff_login_event_record(kind="failed", request=request, username=str(credentials.get("username", "")))


try:
    from axes.signals import user_locked_out
except ImportError:  # pragma: no cover - axes is a requirement
    user_locked_out = None

if user_locked_out is not None:

    @receiver(user_locked_out, dispatch_uid="trialsite_staff_locked_out")
    def _on_locked_out(sender, request, username, ip_address, **kwargs):
        staff_login_event_record(kind="locked_out", request=request, username=str(username or ""))
