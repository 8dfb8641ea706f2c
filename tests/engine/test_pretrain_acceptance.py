"""Issue 18's acceptance: ten minutes of pretraining on this CPU teach the Llama-style
tiny preset the corpus. On the project's pretraining corpus, with its own 4k BPE, the
validation loss ends below half of its step-0 value, and the text the model writes at
the end is mostly words of the corpus. Slow (about 11 minutes): run it alone,

    .venv/bin/python -m pytest tests/engine/test_pretrain_acceptance.py -m slow -s

It prints what it measured (losses, steps, tokens/s, the share of corpus words).
"""

from __future__ import annotations

import pytest

from training.engine.data.samples import PRETRAINING_STORY_COUNT
from training.engine.design import corpus, spec
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.pretrain import PretrainSettings, pretrain, sample_text
from training.engine.train.loop import TrainHooks
from training.engine.train.outcome import Outcome

TEN_MINUTES = 600.0
# The schedule's length: about what this CPU trains in ten minutes at batch 16 x 128
# (the time limit stops it first when the machine is busier, the model saved).
STEPS = 150
PROMPTS = ["It was sunny.", "Mia went to", "The fox", '"Look at the', "Tom felt"]
# "Mostly real words": at least this share of the generated words is in the corpus.
MIN_CORPUS_WORD_SHARE = 0.8


def corpus_word_share(texts: list[str], known: set[str]) -> float:
    words = [w.strip('.,!?"').lower() for text in texts for w in text.split()]
    words = [w for w in words if w]
    return sum(w in known for w in words) / len(words) if words else 0.0


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the run stops itself at ten minutes; a busy machine slows the rest
def test_ten_minutes_of_pretraining_halve_the_validation_loss(tmp_path):
    texts = list(corpus.stories(PRETRAINING_STORY_COUNT, seed=0))  # the sample's corpus
    train, held_out = texts[:-250], texts[-250:]
    design_tokenizer.train_tokenizer(train, 4096, tmp_path / "tok")
    design = spec.llama_tiny()
    evals: list[tuple[int, float]] = []
    settings = PretrainSettings(
        steps=STEPS,
        batch_size=16,
        sequence_length=128,
        learning_rate=3e-3,
        warmup_ratio=0.03,
        eval_every=50,
        sample_every=50,
        time_limit_s=TEN_MINUTES,
    )
    result = pretrain(
        design,
        tmp_path / "tok",
        train,
        tmp_path / "out",
        settings,
        validation=held_out,
        hooks=TrainHooks(on_eval=lambda step, loss: evals.append((step, loss))),
    )
    assert result.status in (Outcome.COMPLETED, Outcome.TIMED_OUT)
    assert result.elapsed_s <= TEN_MINUTES + 60  # the limit, plus the step it ends

    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tmp_path / "out" / "model")
    written = [
        sample_text(model, tokenizer, prompt, 40, temperature=0.8, seed=i)[len(prompt) :]
        for i, prompt in enumerate(PROMPTS)
    ]
    share = corpus_word_share(written, corpus.vocabulary(texts))
    first, last = evals[0][1], evals[-1][1]
    print(
        f"\n{result.steps} steps in {result.elapsed_s:.0f} s ({result.status}), "
        f"{result.tokens_per_second:.0f} tokens/s, {result.train_tokens:,} tokens; "
        f"validation loss {first:.3f} at step 0 -> {last:.3f} at step {evals[-1][0]} "
        f"({last / first:.2f} of it); corpus words {100 * share:.0f}% of what it wrote:"
    )
    for prompt, text in zip(PROMPTS, written, strict=True):
        print(f"  {prompt!r} -> {text!r}")
    assert evals[0][0] == 0
    assert last < 0.5 * first
    assert share >= MIN_CORPUS_WORD_SHARE
