from django.conf import settings
from django.core.management.base import BaseCommand

from projects.models import BaseModel
from training.engine.models.store import DEFAULT_MODEL_NAME, import_bundled_model


class Command(BaseCommand):
    help = "Convert the bundled SmolLM2-135M-Instruct (GGUF) to safetensors once and register it."

    def handle(self, *args, **options) -> None:
        path = import_bundled_model(settings.MODEL_STORE_DIR)
        model, created = BaseModel.objects.update_or_create(
            name=DEFAULT_MODEL_NAME,
            defaults={
                "path": str(path),
                "source": BaseModel.Source.BUNDLED,
                "licence": "apache-2.0",
                "is_default": True,
                **BaseModel.facts_of(path),
            },
        )
        verb = "imported" if created else "already in the store:"
        self.stdout.write(
            f"{verb} {model.name} ({model.parameters / 1e6:.0f}M parameters) at {path}"
        )
