from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    name = "participants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trialsite import outbox
        from trialsite.protocol.services import register_protocol_loader

        from .protocol_loader import load_participants_part
        from .services.notices import safety_alert_notify_send
        from .services.safety import SAFETY_ALERT_NOTIFY

        register_protocol_loader("participants", load_participants_part)
        outbox.register(SAFETY_ALERT_NOTIFY, safety_alert_notify_send)
