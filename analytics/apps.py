from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.schedules import crontab

        from trialsite import beat

        # Export jobs: reclaim a running job whose heartbeat went stale, re-publish a queued one whose message was
        # lost.
        beat.register_periodic(
            "export-jobs-sweep",
            task="analytics.tasks.export_jobs_sweep",
            schedule=crontab(minute="*"),
            options={"expires": 55},
        )
        # The dashboard's completion by site and study week, stored (analytics.completion_snapshots).
        beat.register_periodic(
            "completion-snapshots-refresh",
            task="analytics.tasks.completion_snapshots_refresh",
            schedule=crontab(minute="*/5"),
            options={"expires": 290},
        )
