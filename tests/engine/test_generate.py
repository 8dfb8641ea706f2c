"""Batched generation and evaluation prompts, on the bundled model."""

from __future__ import annotations

import pytest

from training.engine.data.samples import eval_prompts
from training.engine.data.shapes import Record, Turn
from training.engine.data.tokenize import prompt_ids
from training.engine.inference.chat import encode_prompt
from training.engine.inference.generate import GenerationSettings, generate, left_pad


def records() -> list[Record]:
    return [
        Record([Turn("user", r["instruction"]), Turn("assistant", r["output"])], "", None, r)
        for r in eval_prompts()
    ]


def test_left_padding_puts_every_prompt_against_the_right_edge():
    batch = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize(
    ("template", "custom"),
    [("model", ""), ("alpaca", ""), ("custom", "Q: {instruction}\nA: {output}")],
)
def test_eval_prompts_are_the_tokens_chat_sends(tokenizer, template, custom):
    for record in records():
        messages = [{"role": "user", "content": record.fields["instruction"]}]
        chat = encode_prompt(tokenizer, messages, template, custom)["input_ids"][0].tolist()
        assert prompt_ids(tokenizer, record, template, custom) == chat


@pytest.mark.slow
def test_batched_greedy_replies_are_those_of_one_prompt_at_a_time(model_dir):
    from training.engine.models import store

    model, tokenizer = store.load_model_and_tokenizer(model_dir, quantization="none", device="cpu")
    prompts = [prompt_ids(tokenizer, r, "model") for r in records()]
    one = generate(model, tokenizer, prompts, GenerationSettings(max_new_tokens=12, batch_size=1))
    batched = generate(model, tokenizer, prompts, GenerationSettings(max_new_tokens=12))
    assert [g.text for g in batched] == [g.text for g in one]
    assert all(g.text for g in one) and all(0 < g.tokens <= 12 for g in one)
