import json

from django.conf import settings
from django.core.management.base import BaseCommand

from projects.models import BaseModel
from training.engine.store import DEFAULT_MODEL_NAME, import_bundled_model


def folder_facts(path) -> dict:
    """Parameter count, context length and size on disk, read from a model folder."""
    config = json.loads((path / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    vocab, inter = config["vocab_size"], config["intermediate_size"]
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads")
    head_dim = config.get("head_dim") or hidden // heads
    kv_width = (kv_heads or heads) * head_dim
    per_layer = hidden * hidden * 2 + hidden * kv_width * 2 + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return {
        "parameters": layers * per_layer + embeddings + hidden,
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
