"""Pretraining a design from random weights with the engine's training loop.

The model is the design's transformers config with random initialisation; the data is
texts tokenized with the design's tokenizer (a story per example, BOS ... EOS, every
token trained); the loop is :class:`~training.engine.train.loop.Trainer`, with text
sampled from the model every ``sample_every`` steps so a student sees it learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from training.engine.config import RunConfig
from training.engine.data.tokenize import Example
from training.engine.design.build import build_model
from training.engine.design.spec import Design
from training.engine.train.loop import (
    Trainer,
    TrainHooks,
    TrainResult,
    configure_threads,
    seed_everything,
)
from training.engine.train.outcome import Outcome


@dataclass
class PretrainSettings:
    steps: int = 100
    batch_size: int = 8
    sequence_length: int = 128
    learning_rate: float = 3e-3
    sample_every: int = 50
    sample_prompt: str = "It was sunny."
    sample_tokens: int = 30
    seed: int = 0
    eval_every: int = 0
    samples: list[tuple[int, str]] = field(default_factory=list)


def examples_from_texts(tokenizer, texts: list[str], max_len: int) -> list[Example]:
    """One example per text: BOS, its tokens, EOS, cut at ``max_len``; all trained."""
    examples = []
    for text in texts:
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        ids = [*ids, tokenizer.eos_token_id][:max_len]
        examples.append({"input_ids": ids, "labels": list(ids)})
    return examples


def sample_text(model, tokenizer, prompt: str, tokens: int, temperature: float = 0.8) -> str:
    model.eval()
    ids = [tokenizer.bos_token_id, *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=tokens,
            do_sample=True,
            temperature=temperature,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    model.train()
    return tokenizer.decode(out[0][1:], skip_special_tokens=True)


class Pretrainer(Trainer):
    """The engine's Trainer, sampling text every ``sample_every`` steps."""

    def __init__(self, *args, settings: PretrainSettings, on_sample=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings, self.on_sample = settings, on_sample

    def after_step(self) -> Outcome | None:
        outcome = super().after_step()
        every = self.settings.sample_every
        if every and (self.step % every == 0 or self.step == self.total_steps):
            text = sample_text(
                self.model, self.tokenizer, self.settings.sample_prompt, self.settings.sample_tokens
            )
            self.settings.samples.append((self.step, text))
            self.hooks.log(f"sample at step {self.step}: {text}")
            if self.on_sample is not None:
                self.on_sample(self.step, text)
        return outcome


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
) -> TrainResult:
    """Train ``design`` from random weights on ``texts``; the model lands in
    ``output_dir/adapter`` (the whole model: there is no adapter) with its tokenizer."""
    configure_threads()
    seed_everything(settings.seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    model = build_model(
        design, seed=settings.seed, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id
    )
    config = RunConfig(
        model_dir=str(tokenizer_dir),
        dataset_path="(pretraining corpus)",
        output_dir=str(output_dir),
        quantization="none",
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        epochs=1000,
        batch_size=settings.batch_size,
        max_seq_len=settings.sequence_length,
        warmup_ratio=0.05,
        packing=True,
        seed=settings.seed,
        log_every=max(settings.steps // 10, 1),
        checkpoint_every=0,
        eval_every=settings.eval_every,
        autocast="float32",
    )
    examples = examples_from_texts(tokenizer, texts, settings.sequence_length)
    val_examples = examples_from_texts(tokenizer, validation or [], settings.sequence_length)
    trainer = Pretrainer(
        model,
        tokenizer,
        examples,
        config,
        "cuda" if torch.cuda.is_available() else "cpu",
        hooks or TrainHooks(),
        val_examples,
        settings=settings,
        on_sample=on_sample,
    )
    return trainer.run()
