"""The curated model catalog, as data.

Each entry carries the Hub repository, licence, context length, chat template family and
the handful of ``config.json`` values that memory and size estimates need, copied from
each model's published ``config.json``. :func:`.arch.arch_from_config_dict` reads the same
fields from any local model folder, so an imported model gets the same estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.engine.models.arch import DTYPE_BYTES, Arch, param_count


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
