from django.apps import AppConfig


class TrialsiteConfig(AppConfig):
    name = "trialsite"
    verbose_name = "Trials and sites"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
