"""Which models can be written as GGUF: read from ``config.json`` only (no weights, no
torch), so the web process can refuse an export before it is queued."""

from __future__ import annotations

import json
from pathlib import Path

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "GPT2LMHeadModel")


class GgufExportError(ValueError):
    """The model cannot be written as GGUF; the message says why."""


def gguf_config(model_dir: Path) -> dict:
    """The model's ``config.json``; raises :class:`GgufExportError` for a model the GGUF
    writer does not support (another architecture, biases, RoPE scaling)."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    architectures = config.get("architectures") or []
    if "GPT2LMHeadModel" in architectures:
        return _gpt2_config(config)
    if not any(a in SUPPORTED_ARCHITECTURES for a in architectures):
        raise GgufExportError(
            "GGUF export supports the Llama architecture (SmolLM2, TinyLlama) and "
            "GPT-2-style models pretrained in the lab; "
            f"this model is {', '.join(architectures) or 'unknown'}"
        )
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise GgufExportError("GGUF export does not support Llama models with biases")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("default", None):
        raise GgufExportError(f"GGUF export does not support RoPE scaling {kind!r} yet")
    return config


def _gpt2_config(config: dict) -> dict:
    """A GPT-2 config llama.cpp's GPT-2 graph computes the same way (tanh GELU, attention
    scaled by the head size only)."""
    if config.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise GgufExportError(
            f"GGUF export of GPT-2 needs the tanh GELU; this model uses "
            f"{config['activation_function']!r}"
        )
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
        raise GgufExportError("GGUF export does not support GPT-2's attention variants")
    if config.get("scale_attn_weights") is False:
        raise GgufExportError("GGUF export needs GPT-2's attention scaled by the head size")
    return config
