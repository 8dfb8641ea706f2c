"""A model design: a decoder-only transformer as a plain dataclass.

The stack is a token embedding, positions (learned or RoPE), N layers of
[norm, attention, norm, MLP], a final norm and an LM head (tied or untied).
A design is never custom model code: :func:`to_transformers_config` maps it onto
an architecture transformers and llama.cpp both load (Llama for RoPE + SwiGLU +
RMSNorm, GPT-2 for learned positions + GELU + LayerNorm) and refuses the rest.
:func:`validate` answers per-field errors keyed by the field's path
(``"hidden_size"``, ``"layers.2.heads"``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from training.engine.models.arch import arch_from_config_dict

POSITIONS = ("rope", "learned")
NORMS = ("rmsnorm", "layernorm")
MLPS = ("swiglu", "gelu")

# Field limits that keep a design something a student trains on a CPU or one GPU.
MAX_LAYERS = 64
MAX_WIDTH = 8192
MAX_VOCAB = 262_144
MAX_CONTEXT = 32_768


@dataclass
class Layer:
    """One decoder layer: norm, attention, norm, MLP."""

    norm: str = "rmsnorm"
    heads: int = 4
    kv_heads: int = 4
    mlp: str = "swiglu"
    mlp_hidden: int = 512


@dataclass
class Design:
    """A decoder-only transformer, block by block."""

    vocab_size: int = 4096
    hidden_size: int = 128
    positions: str = "rope"
    rope_theta: float = 10000.0
    context_length: int = 256
    layers: list[Layer] = field(default_factory=lambda: [Layer() for _ in range(4)])
    final_norm: str = "rmsnorm"
    tie_embeddings: bool = True
    dropout: float = 0.0

    @property
    def first(self) -> Layer:
        return self.layers[0] if self.layers else Layer()

    def head_dim(self, layer: Layer | None = None) -> int:
        layer = layer or self.first
        return self.hidden_size // layer.heads if layer.heads > 0 else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Design:
        """A design from :meth:`to_dict` output (or YAML of it); raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError("a design is a mapping of its settings")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown design settings: {', '.join(unknown)}")
        values = dict(data)
        layers = values.pop("layers", None)
        try:
            design = cls(**values)
            if layers is not None:
                if not isinstance(layers, list):
                    raise ValueError("layers must be a list")
                layer_fields = set(Layer.__dataclass_fields__)
                for item in layers:
                    if not isinstance(item, dict) or set(item) - layer_fields:
                        raise ValueError(f"a layer has unknown settings: {item!r}")
                design.layers = [Layer(**item) for item in layers]
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        return design


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def architecture_of(design: Design) -> str:
    """``"llama"`` or ``"gpt2"``; raises ValueError saying why no architecture fits."""
    first = design.first
    if design.positions == "rope" and first.mlp == "swiglu" and first.norm == "rmsnorm":
        return "llama"
    if design.positions == "learned" and first.mlp == "gelu" and first.norm == "layernorm":
        return "gpt2"
    raise ValueError(
        "no transformers architecture that llama.cpp also loads has "
        f"{design.positions} positions with a {first.mlp} MLP and {first.norm}: use "
        "RoPE + SwiGLU + RMSNorm (Llama) or learned positions + GELU + LayerNorm (GPT-2)"
    )


def validate(
    design: Design,
    *,
    sequence_length: int | None = None,
    tokenizer_vocab: int | None = None,
) -> dict[str, str]:
    """Errors by field path; empty when the design builds and trains.

    ``sequence_length`` is what training will use (at most the context length),
    ``tokenizer_vocab`` the size of the design's tokenizer. Whether a worker can
    hold it is :func:`~.counts.check`'s part.
    """
    errors: dict[str, str] = {}
    h = design.hidden_size
    if not _is_int(h) or not 8 <= h <= MAX_WIDTH:
        errors["hidden_size"] = f"width must be a whole number from 8 to {MAX_WIDTH}"
    if not _is_int(design.vocab_size) or not 16 <= design.vocab_size <= MAX_VOCAB:
        errors["vocab_size"] = f"vocabulary must be from 16 to {MAX_VOCAB} tokens"
    elif tokenizer_vocab is not None and design.vocab_size < tokenizer_vocab:
        errors["vocab_size"] = (
            f"vocabulary {design.vocab_size} is smaller than the tokenizer's {tokenizer_vocab}"
        )
    if design.positions not in POSITIONS:
        errors["positions"] = "positions are learned or RoPE"
    if design.positions == "rope" and not (
        isinstance(design.rope_theta, (int, float)) and design.rope_theta > 0
    ):
        errors["rope_theta"] = "RoPE theta must be positive"
    if not _is_int(design.context_length) or not 8 <= design.context_length <= MAX_CONTEXT:
        errors["context_length"] = f"context length must be from 8 to {MAX_CONTEXT}"
    elif sequence_length is not None and sequence_length > design.context_length:
        errors["context_length"] = (
            f"training sequences of {sequence_length} tokens exceed the "
            f"{design.context_length} positions this design has"
        )
    if design.final_norm not in NORMS:
        errors["final_norm"] = "the final norm is LayerNorm or RMSNorm"
    if not isinstance(design.dropout, (int, float)) or not 0 <= design.dropout < 1:
        errors["dropout"] = "dropout is a share from 0 up to (not including) 1"
    if not 1 <= len(design.layers) <= MAX_LAYERS:
        errors["layers"] = f"a design has from 1 to {MAX_LAYERS} layers"
    for index, layer in enumerate(design.layers):
        errors.update(_layer_errors(design, index, layer))
    if errors:
        return errors
    errors.update(_shape_errors(design))
    return errors


def _layer_errors(design: Design, index: int, layer: Layer) -> dict[str, str]:
    at = f"layers.{index}."
    errors: dict[str, str] = {}
    if layer.norm not in NORMS:
        errors[at + "norm"] = "norm is LayerNorm or RMSNorm"
    if layer.mlp not in MLPS:
        errors[at + "mlp"] = "MLP is SwiGLU or GELU"
    if not _is_int(layer.mlp_hidden) or not 8 <= layer.mlp_hidden <= 8 * MAX_WIDTH:
        errors[at + "mlp_hidden"] = "MLP hidden size must be a whole number of at least 8"
    if not _is_int(layer.heads) or layer.heads < 1:
        errors[at + "heads"] = "heads must be a whole number of at least 1"
        return errors
    if _is_int(design.hidden_size) and design.hidden_size % layer.heads:
        errors[at + "heads"] = f"width {design.hidden_size} is not divisible by {layer.heads} heads"
    elif design.positions == "rope" and (design.hidden_size // layer.heads) % 2:
        errors[at + "heads"] = (
            f"head size {design.hidden_size // layer.heads} is odd: RoPE rotates pairs"
        )
    if not _is_int(layer.kv_heads) or layer.kv_heads < 1:
        errors[at + "kv_heads"] = "key/value heads must be a whole number of at least 1"
    elif layer.heads % layer.kv_heads:
        errors[at + "kv_heads"] = (
            f"{layer.heads} heads are not divisible by {layer.kv_heads} key/value heads"
        )
    return errors


def _shape_errors(design: Design) -> dict[str, str]:
    """What a transformers config cannot express: mixed layers, wrong combinations."""
    errors: dict[str, str] = {}
    first = design.first
    for index, layer in enumerate(design.layers[1:], start=1):
        for name in ("norm", "heads", "kv_heads", "mlp", "mlp_hidden"):
            if getattr(layer, name) != getattr(first, name):
                errors[f"layers.{index}.{name}"] = (
                    f"every layer of a transformers model has the same shape: layer 1 has "
                    f"{getattr(first, name)} here"
                )
    if errors:
        return errors
    try:
        arch = architecture_of(design)
    except ValueError as exc:
        errors["positions"] = str(exc)
        return errors
    if design.final_norm != first.norm:
        errors["final_norm"] = f"the final norm must match the layers' {first.norm}"
    if arch == "gpt2" and first.kv_heads != first.heads:
        errors["layers.0.kv_heads"] = (
            "GPT-2 has no grouped-query attention: key/value heads must equal heads"
        )
    return errors


def to_transformers_config(design: Design, *, bos_id: int = 1, eos_id: int = 2) -> dict:
    """The ``config.json`` contents of the model; raises ValueError when invalid."""
    errors = validate(design)
    if errors:
        raise ValueError("; ".join(f"{k}: {v}" for k, v in errors.items()))
    first = design.first
    common = {
        "vocab_size": design.vocab_size,
        "tie_word_embeddings": design.tie_embeddings,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
    }
    if architecture_of(design) == "llama":
        return common | {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": design.hidden_size,
            "intermediate_size": first.mlp_hidden,
            "num_hidden_layers": len(design.layers),
            "num_attention_heads": first.heads,
            "num_key_value_heads": first.kv_heads,
            "head_dim": design.head_dim(),
            "max_position_embeddings": design.context_length,
            "rope_theta": float(design.rope_theta),
            "rms_norm_eps": 1e-5,
            "hidden_act": "silu",
            "attention_dropout": float(design.dropout),
            "attention_bias": False,
            "mlp_bias": False,
        }
    return common | {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_embd": design.hidden_size,
        "n_inner": first.mlp_hidden,
        "n_layer": len(design.layers),
        "n_head": first.heads,
        "n_positions": design.context_length,
        "activation_function": "gelu_new",
        "resid_pdrop": float(design.dropout),
        "embd_pdrop": float(design.dropout),
        "attn_pdrop": float(design.dropout),
        "layer_norm_epsilon": 1e-5,
    }


# Presets -----------------------------------------------------------------------------


def llama_tiny() -> Design:
    """Llama-style tiny: a few million parameters with a 4k vocabulary."""
    return Design(
        vocab_size=4096,
        hidden_size=256,
        positions="rope",
        context_length=256,
        layers=[Layer("rmsnorm", 8, 4, "swiglu", 688) for _ in range(4)],
        final_norm="rmsnorm",
        tie_embeddings=True,
    )


def gpt2_tiny() -> Design:
    """GPT-2-style tiny: learned positions, GELU, LayerNorm, tied head."""
    return Design(
        vocab_size=4096,
        hidden_size=256,
        positions="learned",
        context_length=256,
        layers=[Layer("layernorm", 4, 4, "gelu", 1024) for _ in range(4)],
        final_norm="layernorm",
        tie_embeddings=True,
    )


PRESETS = {"llama-tiny": llama_tiny, "gpt2-tiny": gpt2_tiny}


def from_config_dict(config: dict[str, Any]) -> Design:
    """The architecture of a model from its ``config.json`` contents (weights not kept)."""
    if "text_config" in config:
        config = config["text_config"]
    if config.get("model_type") == "gpt2":
        heads = int(config["n_head"])
        width = int(config["n_embd"])
        return replace(
            gpt2_tiny(),
            vocab_size=int(config["vocab_size"]),
            hidden_size=width,
            context_length=int(config.get("n_positions", 1024)),
            layers=[
                Layer("layernorm", heads, heads, "gelu", int(config.get("n_inner") or 4 * width))
                for _ in range(int(config["n_layer"]))
            ],
            tie_embeddings=bool(config.get("tie_word_embeddings", True)),
        )
    arch = arch_from_config_dict(config)
    rope = config.get("rope_parameters") or {}
    theta = config.get("rope_theta") or rope.get("rope_theta") or 10000.0
    return Design(
        vocab_size=arch.vocab_size,
        hidden_size=arch.hidden_size,
        positions="rope",
        rope_theta=float(theta),
        context_length=min(int(config.get("max_position_embeddings") or 2048), MAX_CONTEXT),
        layers=[
            Layer(
                "rmsnorm",
                arch.num_attention_heads,
                arch.num_key_value_heads,
                "swiglu",
                arch.intermediate_size,
            )
            for _ in range(arch.num_hidden_layers)
        ],
        final_norm="rmsnorm",
        tie_embeddings=arch.tie_word_embeddings,
    )


def from_model_dir(model_dir: Path | str) -> Design:
    """The architecture of the store model in ``model_dir``; raises OSError/ValueError."""
    return from_config_dict(json.loads((Path(model_dir) / "config.json").read_text()))
