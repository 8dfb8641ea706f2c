from django.apps import AppConfig


class SlmLabConfig(AppConfig):
    name = "slmlab"
    verbose_name = "SLM Lab"

    def ready(self) -> None:
        from slmlab import checks  # noqa: F401  (registers the deploy checks)
