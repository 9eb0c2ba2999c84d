from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.schedules import crontab

        from participants import dashboard, providers
        from trialsite import beat, outbox
        from trialsite.celery import SWEEP_SCHEDULE
        from trialsite.protocol.services import register_protocol_loader

        from . import checks, selectors  # noqa: F401 - checks registers the reminder-provider system check
        from .admin.dashboard import DASHBOARD
        from .protocol_loader import load_surveys_part
        from .provider import SurveysScheduleProvider
        from .reminders.services import MISSED_STREAK_CHECK, missed_streak_check_run

        register_protocol_loader("surveys", load_surveys_part)
        outbox.register(MISSED_STREAK_CHECK, missed_streak_check_run)
        from .services.kits import KIT_CODE_MISSING_CHECK, kit_code_missing_check_run

        outbox.register(KIT_CODE_MISSING_CHECK, kit_code_missing_check_run)
        # The baseline, adherence and survey planning participants' workflows need (participants.providers).
        providers.register_schedule_provider(SurveysScheduleProvider())
        # The participant dashboard's survey columns, filters and change-page sections.
        dashboard.register_dashboard_extension("surveys", DASHBOARD)
        # Reminders due, instances whose window closed (missed), missed-in-a-row coordinator tasks.
        beat.register_periodic(
            "reminders-sweep",
            task="surveys.reminders.sweep",
            schedule=SWEEP_SCHEDULE,
            options={"expires": 55},  # a sweep that waited a whole minute is superseded by the next one
        )
        # End of study: participants whose schedule is complete become `completed` (on their local date).
        beat.register_periodic(
            "end-of-study-sweep",
            task="surveys.participants_complete_finished",
            schedule=crontab(minute="*/10"),
            options={"expires": 500},
        )
