"""Pretraining a design from random weights with the engine's training loop.

The model is the design's transformers config with random initialisation; the data is
texts tokenized with the design's tokenizer (BOS, the text, EOS, cut into pieces of the
sequence length, every token trained); the loop is
:class:`~training.engine.train.loop.Trainer` (packing, the loss over trained tokens
only, fused AdamW, checkpoints, resume, cancel, the time limit), with text sampled from
the model every ``sample_every`` steps so a student sees it learn. A completed run's
model is a plain transformers folder: ``output_dir/model``.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from training.engine.config import RunConfig
from training.engine.data.tokenize import Example
from training.engine.design.build import build_model
from training.engine.design.counts import total_parameters
from training.engine.design.spec import Design
from training.engine.train import checkpoint, speed
from training.engine.train.checkpoint import Checkpoint
from training.engine.train.loop import (
    Trainer,
    TrainHooks,
    TrainResult,
    configure_threads,
    seed_everything,
)
from training.engine.train.outcome import Outcome
from training.engine.train.process import reset_peak_memory

PRECISIONS = ("auto", "float32")
MAX_VALIDATION_TEXTS = 500


@dataclass
class PretrainSettings:
    """How a design is pretrained; a pretraining run's ``config`` holds these fields."""

    steps: int = 100
    batch_size: int = 8
    sequence_length: int = 128
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    sample_every: int = 50
    sample_prompt: str = "It was sunny."
    sample_tokens: int = 30
    seed: int = 0
    eval_every: int = 0
    # A share of the texts held out for the validation loss when no validation texts
    # are given (seeded, at most MAX_VALIDATION_TEXTS of them).
    validation_share: float = 0.05
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    time_limit_s: float = 0.0
    # "auto": bf16 autocast (fp32 weights and optimizer) where the device has native
    # bf16 (CUDA GPUs that support it, CPUs with avx512_bf16/AMX); "float32": never.
    precision: str = "auto"
    samples: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("samples")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainSettings:
        """Settings from :meth:`to_dict` output (or a run's config); ValueError names
        the first unknown or invalid one."""
        known = {f.name for f in dataclasses.fields(cls)} - {"samples"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown pretraining settings: {', '.join(unknown)}")
        settings = cls(**data)
        settings.validate()
        return settings

    def validate(self) -> None:
        checks = [
            ("steps", isinstance(self.steps, int) and self.steps >= 1, "at least 1"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, ">= 1"),
            (
                "sequence_length",
                isinstance(self.sequence_length, int) and self.sequence_length >= 8,
                "at least 8",
            ),
            ("learning_rate", 0 < float(self.learning_rate) <= 1, "from 0 to 1"),
            ("sample_every", self.sample_every >= 0, "0 (never) or more"),
            ("sample_tokens", 1 <= self.sample_tokens <= 512, "from 1 to 512"),
            ("validation_share", 0 <= self.validation_share <= 0.5, "from 0 to 0.5"),
            ("precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name}: must be {expected}")

    def run_config(self, tokenizer_dir: Path | str, output_dir: Path | str) -> RunConfig:
        """The loop's settings: every token trained, packed micro-batches, no adapter."""
        return RunConfig(
            model_dir=str(tokenizer_dir),
            dataset_path="(pretraining texts)",
            output_dir=str(output_dir),
            quantization="none",
            learning_rate=float(self.learning_rate),
            max_steps=self.steps,
            epochs=1000,
            batch_size=self.batch_size,
            max_seq_len=self.sequence_length,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            packing=True,
            seed=self.seed,
            log_every=max(self.steps // 20, 1),
            checkpoint_every=self.checkpoint_every,
            keep_checkpoints=self.keep_checkpoints,
            time_limit_s=float(self.time_limit_s),
            eval_every=self.eval_every,
            autocast="float32" if self.precision == "float32" else "auto",
        )


def examples_from_texts(tokenizer: Any, texts: list[str], max_len: int) -> list[Example]:
    """BOS, each text's tokens, EOS, in pieces of at most ``max_len``; all trained.

    A text longer than a sequence becomes several examples instead of losing its end.
    """
    examples = []
    for text in texts:
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        ids.append(tokenizer.eos_token_id)
        for start in range(0, len(ids), max_len):
            piece = ids[start : start + max_len]
            if len(piece) >= 2:  # one token predicts nothing
                examples.append({"input_ids": piece, "labels": list(piece)})
    return examples


def split_validation(texts: list[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts): a seeded ``share``, at least one when any."""
    if share <= 0 or len(texts) < 2:
        return texts, []
    count = min(max(1, round(len(texts) * share)), MAX_VALIDATION_TEXTS, len(texts) - 1)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    train = [t for i, t in enumerate(texts) if i not in held]
    return train, [texts[i] for i in sorted(held)]


def sample_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    tokens: int,
    temperature: float = 0.8,
    seed: int | None = None,
) -> str:
    """The prompt and what the model writes after it (sampled; greedy at temperature 0).

    With ``seed`` it draws from its own generator, leaving the training's random state
    as it was (a resumed run then goes on exactly as the uninterrupted one).
    """
    was_training = model.training
    model.eval()
    ids = [tokenizer.bos_token_id, *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    device = next(model.parameters()).device
    sampling = temperature > 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids], device=device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                max_new_tokens=tokens,
                do_sample=sampling,
                temperature=temperature if sampling else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
    if was_training:
        model.train()
    return tokenizer.decode(out[0][1:], skip_special_tokens=True)


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """bf16 autocast where the device computes it natively and ``precision`` allows."""
    if precision == "float32":
        return None
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if speed.cpu_has_fast_bf16() else None


class Pretrainer(Trainer):
    """The engine's Trainer for a whole model: samples text every ``sample_every``
    steps, and its checkpoints and final folder hold every weight."""

    saved_folder = "model"
    saved_what = "model"
    save_options: dict[str, Any] = {}  # a whole transformers model

    def __init__(
        self,
        *args: Any,
        settings: PretrainSettings,
        on_sample: Callable[[int, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.settings, self.on_sample = settings, on_sample

    def after_step(self) -> Outcome | None:
        every = self.settings.sample_every
        if every and (self.step % every == 0 or self.step == self.total_steps):
            self.sample()
        return super().after_step()

    def sample(self) -> None:
        settings = self.settings
        began = time.perf_counter()
        text = sample_text(
            self.model,
            self.tokenizer,
            settings.sample_prompt,
            settings.sample_tokens,
            seed=settings.seed + self.step,
        )
        self.clock.pause(time.perf_counter() - began)  # not training time
        settings.samples.append((self.step, text))
        self.hooks.log(f"sample at step {self.step}: {text}")
        if self.on_sample is not None:
            self.on_sample(self.step, text)

    def load_weights(self, saved: Checkpoint) -> None:
        """Every weight from a checkpoint (a tied LM head is its embedding again)."""
        from safetensors.torch import load_file

        weights = load_file(saved.path / "model.safetensors")
        result = self.model.load_state_dict(weights, strict=False)
        tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
        if result.unexpected_keys or set(result.missing_keys) - tied:
            raise checkpoint.CheckpointError(
                f"checkpoint {saved.path.name} does not hold this design's weights"
            )
        self.model.tie_weights()


def pretrain(
    design: Design,
    tokenizer_dir: Path | str,
    texts: list[str],
    output_dir: Path | str,
    settings: PretrainSettings,
    *,
    validation: list[str] | None = None,
    hooks: TrainHooks | None = None,
    on_sample: Callable[[int, str], None] | None = None,
    resume_from: Checkpoint | None = None,
) -> TrainResult:
    """Train ``design`` from random weights on ``texts``; a completed (or time-limited)
    run leaves the model with its tokenizer in ``output_dir/model``.

    Without ``validation`` texts a seeded share of ``texts`` is held out. With
    ``resume_from`` the run goes on from that checkpoint as if it had never stopped.
    """
    settings.validate()
    hooks = hooks or TrainHooks()
    reset_peak_memory()
    configure_threads()
    seed_everything(settings.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if validation is None:
        texts, validation = split_validation(texts, settings.validation_share, settings.seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    if len(tokenizer) > design.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens, more than the design's "
            f"vocabulary of {design.vocab_size}"
        )
    model = build_model(
        design, seed=settings.seed, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id
    ).to(device)
    setattr(model, speed.AUTOCAST_ATTR, autocast_dtype(settings.precision, device))
    hooks.log(
        f"built the design: {total_parameters(design):,} parameters "
        f"({model.config.model_type}) on {device}"
    )
    config = settings.run_config(tokenizer_dir, output_dir)
    examples = examples_from_texts(tokenizer, texts, settings.sequence_length)
    if not examples:
        raise ValueError("there is no text to pretrain on")
    val_examples = examples_from_texts(tokenizer, validation, settings.sequence_length)
    hooks.log(
        f"{len(texts):,} training texts ({len(examples):,} sequences), "
        f"{len(validation):,} held out for the validation loss"
    )
    trainer = Pretrainer(
        model,
        tokenizer,
        examples,
        config,
        device,
        hooks,
        val_examples,
        settings=settings,
        on_sample=on_sample,
    )
    if resume_from is not None:
        trainer.resume(resume_from)
    return trainer.run()
