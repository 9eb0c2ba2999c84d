from django.apps import AppConfig


class TrialsiteConfig(AppConfig):
    name = "trialsite"
    verbose_name = "Trials and sites"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # pghistory's app shows as the audit trail in admin headings and breadcrumbs (not "Pghistory").
        from django.apps import apps

        from . import (
            outbox,  # noqa: F401 - registers the outbox's own kinds (e-mail)
            staff_security,  # noqa: F401 - connects the staff login audit signals
        )
        from .api import schema  # noqa: F401 - registers the OpenAPI bearer-auth extension

        apps.get_app_config("pghistory").verbose_name = "Audit trail"

        from django.db.models.signals import post_migrate

        from .audit import should_ignore_install

        # The audit triggers' cheaper ignore check, after every migrate (pgtrigger rewrites its own with triggers).
        post_migrate.connect(should_ignore_install, sender=self, dispatch_uid="trialsite.should_ignore_install")
