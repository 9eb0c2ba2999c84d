"""Shared argument handling of the allocation commands."""

from django.core.management.base import CommandError

from trialsite.models import Trial


def trial_from_slug(slug: str) -> Trial:
    trial = Trial.objects.filter(slug=slug).first()
    if trial is None:
        raise CommandError(f"No trial {slug!r}; load its protocol first (load_protocol).")
    return trial


def validation_message(exc) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {m}" for k, msgs in exc.message_dict.items() for m in msgs)
    return "; ".join(exc.messages)
