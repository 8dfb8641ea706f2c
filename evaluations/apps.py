from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluations"

    def ready(self) -> None:
        from evaluations import signals  # noqa: F401  (an eval file goes with its evaluation)
