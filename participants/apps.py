from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    name = "participants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trialsite import admin_audit, admin_scoping, beat, outbox, principals
        from trialsite.celery import SWEEP_SCHEDULE
        from trialsite.protocol.services import register_protocol_loader

        from . import blinding, selectors, token_join
        from .models import Participant
        from .protocol_loader import load_participants_part
        from .services.notices import safety_alert_notify_send
        from .services.safety import SAFETY_ALERT_NOTIFY

        register_protocol_loader("participants", load_participants_part)
        outbox.register(SAFETY_ALERT_NOTIFY, safety_alert_notify_send)
        # What the spine needs from this app, told explicitly (the spine imports no app).
        principals.register_participant_lookup(
            participant_for_user=selectors.participant_for_user, is_participant=selectors.user_is_participant
        )
        # Read with every bearer token, in the token lookup's one statement: the phone's participant and consent rows.
        principals.register_token_join(token_join.PHONE_JOIN)
        admin_scoping.register_arm_bearing(
            "participants", lambda: blinding.REGISTRY, trial_paths=lambda: blinding.TRIAL_PATHS
        )
        admin_audit.register_audit_subject(model=Participant, key_field="study_id", site_field="site")
        # Safety alerts nobody acknowledged in time → trial managers.
        beat.register_periodic(
            "safety-escalation-sweep",
            task="participants.tasks.safety_alerts_escalate_due",
            schedule=SWEEP_SCHEDULE,
            options={"expires": 55},
        )
