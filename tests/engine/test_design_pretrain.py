"""Pretraining a design from random weights: the loss falls and text is sampled."""

from __future__ import annotations

from dataclasses import replace

import pytest

from training.engine.design import corpus, spec
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.pretrain import PretrainSettings, pretrain
from training.engine.design.spec import Layer
from training.engine.train.loop import TrainHooks


def test_the_corpus_has_variety_and_is_deterministic():
    texts = list(corpus.stories(500, seed=1))
    assert len(set(texts)) == 500
    assert texts == list(corpus.stories(500, seed=1))
    assert len(corpus.vocabulary(texts)) > 150


@pytest.mark.slow
def test_a_short_pretraining_reduces_the_loss_and_samples_text(tmp_path):
    texts = list(corpus.stories(600, seed=0))
    design_tokenizer.train_tokenizer(texts, 512, tmp_path / "tok")
    design = replace(spec.llama_tiny(), vocab_size=512, hidden_size=64, context_length=128)
    design.layers = [Layer("rmsnorm", 4, 2, "swiglu", 128) for _ in range(2)]
    seen: list[tuple[int, str]] = []
    evals: list[tuple[int, float]] = []
    settings = PretrainSettings(steps=30, batch_size=8, sequence_length=96, sample_every=15)
    result = pretrain(
        design,
        tmp_path / "tok",
        texts[:500],
        tmp_path / "out",
        settings,
        validation=texts[500:],
        hooks=TrainHooks(on_eval=lambda step, loss: evals.append((step, loss))),
        on_sample=lambda step, text: seen.append((step, text)),
    )
    assert result.steps == 30
    assert [step for step, _ in seen] == [15, 30]
    assert all(text.startswith("It was sunny.") for _, text in seen)
    assert result.eval_loss is not None and result.final_loss is not None
    assert evals[0][0] == 0 and evals[-1][0] == 30
    assert evals[-1][1] < 0.75 * evals[0][1]  # validation loss down by a quarter at least
    assert (tmp_path / "out" / "adapter" / "config.json").exists()
