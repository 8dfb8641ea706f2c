"""Architecture facts of a decoder-only causal LM, read once from its ``config.json``.

:class:`Arch` holds the numbers that sizes and memory estimates need; :func:`read_model_facts`
reads them, with the checkpoint dtype and context length, from a model folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bytes per element of the dtypes checkpoints are published in.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Arch:
    """The architecture numbers of a decoder-only (Llama-family) causal LM."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    attention_bias: bool = False  # Qwen2: biases on q, k and v
    norms_per_layer: int = 2  # Gemma 2 has four (pre/post attention, pre/post MLP)
    # Phi-3 stores q/k/v as one ``qkv_proj`` and gate/up as one ``gate_up_proj``:
    # same parameter count, but LoRA adapts the fused matrices (one A per module).
    fused_qkv: bool = False
    fused_gate_up: bool = False

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of every linear layer in one decoder layer."""
        h, i, q, kv = self.hidden_size, self.intermediate_size, self.q_dim, self.kv_dim
        shapes: dict[str, tuple[int, int]] = {}
        if self.fused_qkv:
            shapes["qkv_proj"] = (h, q + 2 * kv)
        else:
            shapes.update(q_proj=(h, q), k_proj=(h, kv), v_proj=(h, kv))
        shapes["o_proj"] = (q, h)
        if self.fused_gate_up:
            shapes["gate_up_proj"] = (h, 2 * i)
        else:
            shapes.update(gate_proj=(h, i), up_proj=(h, i))
        shapes["down_proj"] = (i, h)
        return shapes


def param_count(arch: Arch) -> int:
    """Exact parameter count: embeddings, decoder layers, final norm and an untied LM head."""
    h = arch.hidden_size
    embeddings = arch.vocab_size * h
    linear = sum(n_in * n_out for n_in, n_out in arch.linear_shapes().values())
    bias = arch.q_dim + 2 * arch.kv_dim if arch.attention_bias else 0
    per_layer = linear + bias + arch.norms_per_layer * h
    lm_head = 0 if arch.tie_word_embeddings else arch.vocab_size * h
    return embeddings + arch.num_hidden_layers * per_layer + h + lm_head


def quantizable_param_count(arch: Arch) -> int:
    """Weights of the decoder's linear layers: what bitsandbytes quantizes.

    Embeddings, the LM head, norms and biases stay in floating point.
    """
    linear = sum(n_in * n_out for n_in, n_out in arch.linear_shapes().values())
    return arch.num_hidden_layers * linear


def arch_from_config_dict(config: dict[str, Any]) -> Arch:
    """An :class:`Arch` from a model's ``config.json`` contents.

    Missing optional keys take the transformers defaults: ``head_dim`` is
    hidden/heads, ``num_key_value_heads`` equals the heads, embeddings are tied.
    """
    if "text_config" in config:  # multimodal wrappers nest the language model
        config = config["text_config"]
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        arch = Arch(
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
            attention_bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")),
            norms_per_layer=4 if config.get("model_type") in ("gemma2", "gemma3_text") else 2,
            fused_qkv=config.get("model_type") == "phi3",
            fused_gate_up=config.get("model_type") == "phi3",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"config.json lacks a usable architecture value: {exc}") from exc
    return arch


@dataclass(frozen=True)
class ModelFacts:
    """What a model folder's ``config.json`` says, as the lab uses it."""

    arch: Arch
    checkpoint_dtype: str  # the dtype its weights are stored in
    context_length: int  # 0 when the config does not say
    custom_code: bool  # it declares model code (auto_map), which the lab never runs

    @property
    def parameters(self) -> int:
        return param_count(self.arch)


def facts_from_config(config: dict[str, Any]) -> ModelFacts:
    """:class:`ModelFacts` from ``config.json`` contents; raises ValueError when unusable."""
    return ModelFacts(
        arch=arch_from_config_dict(config),
        checkpoint_dtype=config.get("dtype") or config.get("torch_dtype") or "float32",
        context_length=int(config.get("max_position_embeddings") or 0),
        custom_code=bool(config.get("auto_map")),
    )


def read_model_facts(model_dir: Path | str) -> ModelFacts:
    """The facts of the model in ``model_dir``; raises OSError (no readable config.json)
    or ValueError (not a decoder config we know)."""
    return facts_from_config(json.loads((Path(model_dir) / "config.json").read_text()))
