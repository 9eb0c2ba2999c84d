from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    name = "participants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trialsite.protocol.services import register_protocol_loader

        from .protocol_loader import load_participants_part

        register_protocol_loader("participants", load_participants_part)
