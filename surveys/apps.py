from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from participants import hooks
        from trialsite import outbox
        from trialsite.protocol.services import register_protocol_loader

        from . import checks, selectors  # noqa: F401 - checks registers the reminder-provider system check
        from .protocol_loader import load_surveys_part
        from .reminders.services import MISSED_STREAK_CHECK, missed_streak_check_run
        from .services import schedule

        register_protocol_loader("surveys", load_surveys_part)
        outbox.register(MISSED_STREAK_CHECK, missed_streak_check_run)
        from .services.kits import KIT_CODE_MISSING_CHECK, kit_code_missing_check_run

        outbox.register(KIT_CODE_MISSING_CHECK, kit_code_missing_check_run)
        hooks.register_baseline_check("surveys", selectors.baseline_status)
        hooks.register_baseline_score("surveys", selectors.baseline_score)
        hooks.register_adherence("surveys", selectors.participants_adherence)
        hooks.register("consented", "surveys.plan", schedule.on_consented)
        hooks.register("randomised", "surveys.plan", schedule.on_randomised)
        hooks.register("timezone_changed", "surveys.plan", schedule.on_timezone_changed)
        hooks.register("withdrawn", "surveys.cancel", schedule.on_withdrawn)
