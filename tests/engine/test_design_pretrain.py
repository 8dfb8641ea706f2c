"""Pretraining a design from random weights: the loss falls, text is sampled, a stopped
run resumes from its checkpoint exactly, and the saved model loads in transformers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from training.engine.design import corpus, spec
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.pretrain import (
    PretrainSettings,
    examples_from_texts,
    pretrain,
    split_validation,
)
from training.engine.design.spec import Layer
from training.engine.train import checkpoint
from training.engine.train.loop import TrainHooks
from training.engine.train.outcome import Outcome


def test_the_corpus_has_variety_and_is_deterministic():
    texts = list(corpus.stories(500, seed=1))
    assert len(set(texts)) == 500
    assert texts == list(corpus.stories(500, seed=1))
    assert len(corpus.vocabulary(texts)) > 150


def _tiny_design(vocab: int = 512):
    design = replace(spec.llama_tiny(), vocab_size=vocab, hidden_size=64, context_length=128)
    design.layers = [Layer("rmsnorm", 4, 2, "swiglu", 128) for _ in range(2)]
    return design


@pytest.fixture(scope="module")
def stories_tokenizer(tmp_path_factory):
    texts = list(corpus.stories(600, seed=0))
    folder = tmp_path_factory.mktemp("tok")
    design_tokenizer.train_tokenizer(texts, 512, folder)
    return texts, folder


def test_long_texts_become_several_sequences_and_nothing_is_lost(stories_tokenizer):
    from transformers import PreTrainedTokenizerFast

    texts, folder = stories_tokenizer
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    long = " ".join(texts[:5])
    examples = examples_from_texts(tokenizer, [long], 32)
    ids = [i for e in examples for i in e["input_ids"]]
    assert len(examples) > 2 and all(len(e["input_ids"]) <= 32 for e in examples)
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert len(ids) == len(tokenizer(long, add_special_tokens=False)["input_ids"]) + 2


def test_the_validation_share_is_held_out_and_seeded():
    texts = [f"text {i}" for i in range(100)]
    train, held = split_validation(texts, 0.05, seed=3)
    assert len(held) == 5 and not set(held) & set(train) and len(train) == 95
    assert split_validation(texts, 0.05, seed=3) == (train, held)


def test_a_short_pretraining_reduces_the_loss_and_samples_text(stories_tokenizer, tmp_path):
    """Always on: a few seconds of training on the corpus, the validation loss falls."""
    texts, folder = stories_tokenizer
    seen: list[tuple[int, str]] = []
    evals: list[tuple[int, float]] = []
    settings = PretrainSettings(steps=40, batch_size=8, sequence_length=96, sample_every=20)
    result = pretrain(
        _tiny_design(),
        folder,
        texts[:500],
        tmp_path / "out",
        settings,
        validation=texts[500:],
        hooks=TrainHooks(on_eval=lambda step, loss: evals.append((step, loss))),
        on_sample=lambda step, text: seen.append((step, text)),
    )
    assert result.steps == 40 and result.status == Outcome.COMPLETED
    assert [step for step, _ in seen] == [20, 40]
    assert all(text.startswith("It was sunny.") for _, text in seen)
    assert evals[0][0] == 0 and evals[-1][0] == 40
    assert evals[-1][1] < 0.8 * evals[0][1]  # validation loss down by a fifth at least
    model_dir = tmp_path / "out" / "model"
    assert (model_dir / "config.json").exists() and (model_dir / "tokenizer.json").exists()


class StopAt:
    """should_stop: INTERRUPTED once the run reached ``step`` (as a worker going away)."""

    def __init__(self, step: int) -> None:
        self.step, self.current = step, 0

    def on_metrics(self, m) -> None:
        self.current = m.step

    def __call__(self):
        return Outcome.INTERRUPTED if self.current >= self.step else None


def test_a_stopped_pretraining_resumes_from_its_checkpoint_exactly(stories_tokenizer, tmp_path):
    texts, folder = stories_tokenizer
    design = _tiny_design()

    def settings():
        return PretrainSettings(
            steps=12, batch_size=4, sequence_length=64, sample_every=6, checkpoint_every=4
        )

    whole: list[float] = []
    straight = pretrain(
        design,
        folder,
        texts[:200],
        tmp_path / "a",
        settings(),
        hooks=TrainHooks(on_metrics=lambda m: whole.append(m.loss)),
    )
    stop = StopAt(6)
    first: list[float] = []

    def on_metrics(m):
        stop.on_metrics(m)
        first.append(m.loss)

    cut = pretrain(
        design,
        folder,
        texts[:200],
        tmp_path / "b",
        settings(),
        hooks=TrainHooks(on_metrics=on_metrics, should_stop=stop),
    )
    assert cut.status == Outcome.INTERRUPTED and cut.steps == 6
    saved = checkpoint.latest(tmp_path / "b")
    assert saved is not None and saved.step == 6
    rest: list[float] = []
    samples: list[int] = []
    resumed = pretrain(
        design,
        folder,
        texts[:200],
        tmp_path / "b",
        settings(),
        hooks=TrainHooks(on_metrics=lambda m: rest.append(m.loss)),
        on_sample=lambda step, text: samples.append(step),
        resume_from=saved,
    )
    assert resumed.status == Outcome.COMPLETED and resumed.steps == 12
    assert samples == [12]
    assert first[:6] + rest == pytest.approx(whole, rel=1e-4)
    assert resumed.eval_loss == pytest.approx(straight.eval_loss, rel=1e-4)


def test_the_saved_model_loads_and_generates_with_transformers(stories_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts, folder = stories_tokenizer
    settings = PretrainSettings(steps=2, batch_size=4, sequence_length=64, sample_every=0)
    pretrain(_tiny_design(), folder, texts[:50], tmp_path / "out", settings)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    assert model.config.model_type == "llama" and tokenizer.chat_template
    out = model.generate(**tokenizer("Mia went", return_tensors="pt"), max_new_tokens=3)
    assert out.shape[1] >= 3


def test_a_tokenizer_larger_than_the_design_is_refused(stories_tokenizer, tmp_path):
    texts, folder = stories_tokenizer
    with pytest.raises(ValueError, match="more than the design's vocabulary of 300"):
        pretrain(_tiny_design(300), folder, texts[:10], tmp_path, PretrainSettings(steps=1))
