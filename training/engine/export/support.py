"""Which models can be written as GGUF: read from ``config.json`` only (no weights, no
torch), so the web process can refuse an export before it is queued."""

from __future__ import annotations

import json
from pathlib import Path

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)


class GgufExportError(ValueError):
    """The model cannot be written as GGUF; the message says why."""


def gguf_config(model_dir: Path) -> dict:
    """The model's ``config.json``; raises :class:`GgufExportError` for a model the GGUF
    writer does not support (another architecture, biases, RoPE scaling)."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    architectures = config.get("architectures") or []
    if not any(a in SUPPORTED_ARCHITECTURES for a in architectures):
        raise GgufExportError(
            "GGUF export supports the Llama architecture (SmolLM2, TinyLlama); "
            f"this model is {', '.join(architectures) or 'unknown'}"
        )
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise GgufExportError("GGUF export does not support Llama models with biases")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("default", None):
        raise GgufExportError(f"GGUF export does not support RoPE scaling {kind!r} yet")
    return config
