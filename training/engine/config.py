"""Run configuration: one dataclass, validated, round-tripped through YAML.

The YAML file written by :meth:`RunConfig.to_yaml` is what ``manage.py train
--config run.yaml`` consumes, so every field here is a plain YAML scalar or list.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.engine.data.formats import FORMATS, TEXT_SPLITS
from training.engine.data.prompts import TEMPLATES
from training.engine.data.shapes import SHAPES

ATTENTION_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]
TARGET_PRESETS = ("all-linear", "attention")
QUANTIZATIONS = ("4bit", "8bit", "none")
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
# The run's precision ("autocast", for the names run.yaml files already use).
AUTOCASTS = ("auto", "bfloat16", "float16", "float32")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
# adamw8bit and the paged ones are bitsandbytes' (paging needs CUDA; elsewhere
# bitsandbytes runs them unpaged, with the same state memory).
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit", "paged_adamw32bit", "sgd")
BNB_OPTIMIZERS = ("adamw8bit", "paged_adamw8bit", "paged_adamw32bit")
LORA_RANK_RANGE = (4, 64)
DEFAULT_MAX_SEQ_LEN = 512


class ConfigError(ValueError):
    """Invalid run settings; ``errors`` maps each bad field to what was expected."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in errors.items()))


@dataclass
class RunConfig:
    """Everything a fine-tuning run needs. Defaults suit a 4-bit QLoRA run on a small model."""

    model_dir: str
    dataset_path: str
    output_dir: str
    quantization: str = "4bit"
    quant_type: str = "nf4"
    double_quant: bool = True
    # "auto": bfloat16 on a CUDA device that supports it, else float32 (CPUs and
    # older GPUs either lack fast bf16 kernels or lose accuracy with fp16 here).
    compute_dtype: str = "auto"
    # The run's precision (mixed precision for the forward pass; LoRA weights and the
    # optimizer stay fp32). "auto": bf16 on a CUDA GPU with bf16, bf16 autocast on a
    # CPU with native bf16 matmuls (avx512_bf16/AMX) when the model computes in fp32,
    # else fp32 (see training.engine.devices.resolve_precision). "float16": CUDA and
    # MPS only, with loss scaling on CUDA; "float32" turns mixed precision off.
    autocast: str = "auto"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    # peft's LoRA variants: rsLoRA scales updates by alpha/sqrt(r) instead of alpha/r;
    # DoRA splits each weight into magnitude and direction (slower, often better).
    use_rslora: bool = False
    use_dora: bool = False
    # LoRA on the input embeddings and the LM head too (new vocabulary, a new language).
    lora_embeddings: bool = False
    learning_rate: float = 2e-4
    epochs: int = 1
    max_steps: int = 0  # 0: train for `epochs` full passes
    batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    warmup_ratio: float = 0.03
    warmup_steps: int = 0  # > 0: this many warmup steps, in place of warmup_ratio
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    optimizer: str = "adamw"
    max_grad_norm: float = 1.0  # 0 disables clipping
    gradient_checkpointing: bool = False
    # Pack each micro-batch's examples into as few rows as fit max_seq_len, with
    # per-example positions and attention boundaries: the same loss and gradients as
    # padding (see tests/engine/test_packing.py) without computing pad tokens.
    packing: bool = True
    seed: int = 42
    train_on_prompt: bool = False
    log_every: int = 1
    # A checkpoint (adapter, optimizer, scheduler, RNG, data position) every N
    # optimizer steps, so a crashed worker loses at most N steps; 0: only when a
    # worker is asked to stop. The newest ``keep_checkpoints`` are kept.
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    # Training seconds (summed over resumes) after which the run stops cleanly with
    # a checkpoint and an adapter; 0: no limit. Operators set it per run.
    time_limit_s: float = 0.0
    # How to read the dataset file and render its rows (training.engine.data.records
    # DataSpec's fields): by default Alpaca JSONL with the model's chat template.
    dataset_format: str = "jsonl"
    dataset_shape: str = "alpaca"
    dataset_mapping: dict[str, str] = field(default_factory=dict)
    dataset_text_split: str = "line"
    prompt_template: str = "model"
    custom_template: str = ""
    # Validation: a separate file read like the dataset, or else a seeded share of
    # the dataset's rows held out of training (the same split the dataset page shows).
    validation_path: str = ""
    validation_ratio: float = 0.0
    split_seed: int = 0
    # Validation loss every N optimizer steps and at the last step; 0: about ten
    # evaluations over the run. Runs without validation data never evaluate.
    eval_every: int = 0
    # After training, the lab evaluates base vs tuned replies on up to this many
    # validation examples (the evaluations app); 0: no end-of-run evaluation.
    eval_examples: int = 100

    def __post_init__(self) -> None:
        # Callers naturally pass Path objects; YAML and JSON want plain strings.
        for name in ("model_dir", "dataset_path", "output_dir", "validation_path"):
            value = getattr(self, name)
            if isinstance(value, Path):
                setattr(self, name, str(value))

    def validate(self) -> None:
        """Raise :class:`ConfigError` listing every invalid field."""
        errors: dict[str, str] = {}
        for f in dataclasses.fields(self):
            message = _check_type(f.name, getattr(self, f.name))
            if message:
                errors[f.name] = message
        for name, message in self._check_values().items():
            errors.setdefault(name, message)
        if errors:
            raise ConfigError(errors)

    def _check_values(self) -> dict[str, str]:
        errors: dict[str, str] = {}

        def need(ok: bool, name: str, message: str) -> None:
            if not ok and name not in errors:
                errors[name] = message

        for name in ("model_dir", "dataset_path", "output_dir"):
            need(bool(str(getattr(self, name)).strip()), name, "must not be empty")
        choices = {
            "quantization": QUANTIZATIONS,
            "quant_type": QUANT_TYPES,
            "compute_dtype": COMPUTE_DTYPES,
            "autocast": AUTOCASTS,
            "lr_scheduler": SCHEDULERS,
            "optimizer": OPTIMIZERS,
            "dataset_format": FORMATS,
            "dataset_shape": SHAPES,
            "dataset_text_split": TEXT_SPLITS,
            "prompt_template": TEMPLATES,
        }
        for name, allowed in choices.items():
            need(getattr(self, name) in allowed, name, f"expected one of {', '.join(allowed)}")
        low, high = LORA_RANK_RANGE
        need(_num(self.lora_r) and low <= self.lora_r <= high, "lora_r", f"must be {low}-{high}")
        need(_num(self.lora_alpha) and self.lora_alpha > 0, "lora_alpha", "must be > 0")
        need(_num(self.lora_dropout) and 0 <= self.lora_dropout < 1, "lora_dropout", "must be 0-<1")
        need(_num(self.learning_rate) and 0 < self.learning_rate <= 1, "learning_rate", "0-1")
        need(_num(self.epochs) and self.epochs >= 1, "epochs", "must be >= 1")
        need(_num(self.max_steps) and self.max_steps >= 0, "max_steps", "must be >= 0")
        need(_num(self.batch_size) and self.batch_size >= 1, "batch_size", "must be >= 1")
        need(_num(self.grad_accum) and self.grad_accum >= 1, "grad_accum", "must be >= 1")
        need(_num(self.max_seq_len) and self.max_seq_len >= 8, "max_seq_len", "must be >= 8")
        need(_num(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, "warmup_ratio", "0-<1")
        need(_num(self.warmup_steps) and self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        need(_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(_num(self.max_grad_norm) and self.max_grad_norm >= 0, "max_grad_norm", ">= 0")
        need(_num(self.seed) and self.seed >= 0, "seed", "must be >= 0")
        need(_num(self.log_every) and self.log_every >= 1, "log_every", "must be >= 1")
        need(
            _num(self.checkpoint_every) and self.checkpoint_every >= 0,
            "checkpoint_every",
            "must be >= 0 (0: only when stopped)",
        )
        need(_num(self.keep_checkpoints) and self.keep_checkpoints >= 1, "keep_checkpoints", ">= 1")
        need(_num(self.time_limit_s) and self.time_limit_s >= 0, "time_limit_s", "0 or more")
        need(
            _num(self.validation_ratio) and 0 <= self.validation_ratio <= 0.5,
            "validation_ratio",
            "must be 0-0.5 (the share of rows held out)",
        )
        need(_num(self.split_seed) and self.split_seed >= 0, "split_seed", "must be >= 0")
        need(_num(self.eval_every) and self.eval_every >= 0, "eval_every", "0 (auto) or more")
        need(_num(self.eval_examples) and self.eval_examples >= 0, "eval_examples", "0 or more")
        need(
            not (self.validation_path and self.validation_ratio),
            "validation_ratio",
            "a separate validation file and a held-out share cannot both be set",
        )
        if isinstance(self.target_modules, str):
            need(
                self.target_modules in TARGET_PRESETS,
                "target_modules",
                f"expected a preset ({', '.join(TARGET_PRESETS)}) or a list of module names",
            )
        elif isinstance(self.target_modules, list):
            need(bool(self.target_modules), "target_modules", "must not be an empty list")
        return errors

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_path) or self.validation_ratio > 0

    def eval_interval(self, total_steps: int) -> int:
        """Steps between evaluations ("auto" resolved to about ten per run)."""
        return self.eval_every or max(1, math.ceil(total_steps / 10))

    def resolved_compute_dtype(self, cuda_available: bool, bf16_supported: bool) -> str:
        """The concrete compute dtype for this device ("auto" resolved).

        On CUDA "auto" follows the precision (bf16 where the GPU has it, fp16 when
        asked for); on a CPU or MPS the model computes in fp32 and mixed precision
        comes from autocast.
        """
        if self.compute_dtype != "auto":
            return self.compute_dtype
        if not cuda_available or self.autocast == "float32":
            return "float32"
        if self.autocast == "float16":
            return "float16"
        return "bfloat16" if bf16_supported else "float32"

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps of a run of ``total_steps``: ``warmup_steps`` when set, else the ratio."""
        if self.warmup_steps:
            return min(self.warmup_steps, total_steps)
        return math.ceil(self.warmup_ratio * total_steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """Build and validate a config; unknown or missing keys raise :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError({"config": "expected a mapping of setting names to values"})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        errors = {
            name: f"unknown setting (expected one of: {', '.join(sorted(known))})"
            for name in unknown
        }
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        errors.update({name: "required" for name in required if name not in data})
        if errors:
            raise ConfigError(errors)
        config = cls(**{k: _coerce(k, v) for k, v in data.items()})
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, text: str) -> RunConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError({"config": f"not valid YAML ({exc})"}) from exc
        return cls.from_dict(data)

    def write_yaml(self, path: Path | str) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def read_yaml(cls, path: Path | str) -> RunConfig:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))


def uses_bf16_autocast(
    autocast: str, quantization: str, compute_dtype: str, device: str, cpu_bf16: bool
) -> bool:
    """Whether a run's forward takes bf16 autocast (the rule ``training.engine.train.speed``
    applies, and ``training.engine.models.memory`` estimates with).

    "auto" turns it on only for a model computing in fp32 on a CPU with native bf16
    (``cpu_bf16``); CUDA runs get bf16 through ``compute_dtype`` instead. bitsandbytes'
    8-bit layers compute in their own dtype, so 8-bit runs never autocast.
    """
    if autocast in ("float32", "float16") or quantization == "8bit":
        return False
    if autocast == "bfloat16":
        return True
    return device == "cpu" and compute_dtype == "float32" and cpu_bf16


_FIELD_TYPES: dict[str, type] = {}


def _field_type(name: str) -> Any:
    if not _FIELD_TYPES:
        defaults = RunConfig("m", "d", "o")
        for f in dataclasses.fields(RunConfig):
            _FIELD_TYPES[f.name] = type(getattr(defaults, f.name))
    return _FIELD_TYPES[name]


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_type(name: str, value: Any) -> str | None:
    """An error message when ``value`` has the wrong type for field ``name``."""
    expected = _field_type(name)
    if name == "target_modules":
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        )
        return None if ok else "expected a preset name or a list of module names"
    if expected is dict:
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return None if ok else "expected a mapping of names to column names"
    if expected is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expected a whole number"
    if expected is float:
        return None if _num(value) else "expected a number"
    return None if isinstance(value, str) else "expected text"


def _coerce(name: str, value: Any) -> Any:
    """Forgive YAML 1.1 quirks: ``2e-4`` parses as a string and ``1`` as an int."""
    expected = _field_type(name)
    if expected is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, Path):
        return str(value)
    return value
