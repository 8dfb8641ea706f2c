"""The curated model catalog, as data, and parameter counts computed from architecture.

Each entry carries the hub repo id, licence, context length, chat template family and
the handful of ``config.json`` values that memory and size estimates need. The values
are copied from each model's published ``config.json``; :func:`arch_from_config_dict`
reads the same fields from any local model folder, so an imported model gets the same
estimates as a catalog one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class CatalogModel:
    key: str
    name: str
    repo_id: str
    licence: str
    context_length: int
    chat_template: str  # template family, for display; the model folder carries the real one
    checkpoint_dtype: str
    arch: Arch
    notes: str = ""
    gated: bool = False  # the hub asks users to accept a licence before downloading
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def params(self) -> int:
        return param_count(self.arch)

    @property
    def disk_bytes(self) -> int:
        """Size of the published safetensors weights (headers excluded)."""
        return self.params * DTYPE_BYTES[self.checkpoint_dtype]


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


CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        key="smollm2-135m",
        name="SmolLM2 135M Instruct",
        repo_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        licence="apache-2.0",
        context_length=8192,
        chat_template="chatml",
        checkpoint_dtype="bfloat16",
        arch=Arch(576, 1536, 30, 9, 3, 64, 49152, True),
        notes="Bundled offline default (shipped as GGUF, converted to safetensors).",
        tags=("bundled", "cpu-friendly"),
    ),
    CatalogModel(
        key="smollm2-360m",
        name="SmolLM2 360M Instruct",
        repo_id="HuggingFaceTB/SmolLM2-360M-Instruct",
        licence="apache-2.0",
        context_length=8192,
        chat_template="chatml",
        checkpoint_dtype="bfloat16",
        arch=Arch(960, 2560, 32, 15, 5, 64, 49152, True),
        tags=("cpu-friendly",),
    ),
    CatalogModel(
        key="smollm2-1.7b",
        name="SmolLM2 1.7B Instruct",
        repo_id="HuggingFaceTB/SmolLM2-1.7B-Instruct",
        licence="apache-2.0",
        context_length=8192,
        chat_template="chatml",
        checkpoint_dtype="bfloat16",
        arch=Arch(2048, 8192, 24, 32, 32, 64, 49152, True),
    ),
    CatalogModel(
        key="qwen2.5-0.5b",
        name="Qwen2.5 0.5B Instruct",
        repo_id="Qwen/Qwen2.5-0.5B-Instruct",
        licence="apache-2.0",
        context_length=32768,
        chat_template="chatml",
        checkpoint_dtype="bfloat16",
        arch=Arch(896, 4864, 24, 14, 2, 64, 151936, True, attention_bias=True),
        notes="Large 152k vocabulary: the loss's logits dominate memory at long sequences.",
    ),
    CatalogModel(
        key="qwen2.5-1.5b",
        name="Qwen2.5 1.5B Instruct",
        repo_id="Qwen/Qwen2.5-1.5B-Instruct",
        licence="apache-2.0",
        context_length=32768,
        chat_template="chatml",
        checkpoint_dtype="bfloat16",
        arch=Arch(1536, 8960, 28, 12, 2, 128, 151936, True, attention_bias=True),
    ),
    CatalogModel(
        key="tinyllama-1.1b",
        name="TinyLlama 1.1B Chat v1.0",
        repo_id="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        licence="apache-2.0",
        context_length=2048,
        chat_template="zephyr",
        checkpoint_dtype="bfloat16",
        arch=Arch(2048, 5632, 22, 32, 4, 64, 32000, False),
    ),
    CatalogModel(
        key="llama3.2-1b",
        name="Llama 3.2 1B Instruct",
        repo_id="meta-llama/Llama-3.2-1B-Instruct",
        licence="llama3.2",
        context_length=131072,
        chat_template="llama3",
        checkpoint_dtype="bfloat16",
        arch=Arch(2048, 8192, 16, 32, 8, 64, 128256, True),
        gated=True,
    ),
    CatalogModel(
        key="phi3-mini",
        name="Phi-3 mini 4k Instruct (3.8B)",
        repo_id="microsoft/Phi-3-mini-4k-instruct",
        licence="mit",
        context_length=4096,
        chat_template="phi3",
        checkpoint_dtype="bfloat16",
        arch=Arch(3072, 8192, 32, 32, 32, 96, 32064, False, fused_qkv=True, fused_gate_up=True),
    ),
    CatalogModel(
        key="gemma2-2b",
        name="Gemma 2 2B it",
        repo_id="google/gemma-2-2b-it",
        licence="gemma",
        context_length=8192,
        chat_template="gemma",
        checkpoint_dtype="bfloat16",
        arch=Arch(2304, 9216, 26, 8, 4, 256, 256000, True, norms_per_layer=4),
        notes="256k vocabulary; needs eager attention (logit soft-capping) for training.",
        gated=True,
    ),
)

CATALOG_BY_KEY = {m.key: m for m in CATALOG}
DEFAULT_MODEL_KEY = "smollm2-135m"


def get_model(key: str) -> CatalogModel:
    try:
        return CATALOG_BY_KEY[key]
    except KeyError:
        known = ", ".join(CATALOG_BY_KEY)
        raise KeyError(f"unknown catalog model {key!r}: expected one of {known}") from None
