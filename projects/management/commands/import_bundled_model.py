import json

from django.conf import settings
from django.core.management.base import BaseCommand

from projects.models import BaseModel
from training.engine.catalog import arch_from_config_dict, param_count
from training.engine.store import DEFAULT_MODEL_NAME, import_bundled_model


def folder_facts(path) -> dict:
    """Parameter count, context length and size on disk, read from a model folder."""
    config = json.loads((path / "config.json").read_text())
    return {
        "parameters": param_count(arch_from_config_dict(config)),
        "context_length": config.get("max_position_embeddings", 0),
        "disk_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    }


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
                **folder_facts(path),
            },
        )
        verb = "imported" if created else "already in the store:"
        self.stdout.write(
            f"{verb} {model.name} ({model.parameters / 1e6:.0f}M parameters) at {path}"
        )
