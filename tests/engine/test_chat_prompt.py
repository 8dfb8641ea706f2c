"""Chat asks a tuned model the way its run's template rendered the training prompts."""

from __future__ import annotations

from typing import Any

import pytest

from training.engine.data.prompts import TemplateError, inference_prompt
from training.engine.data.shapes import Record, Turn
from training.engine.data.tokenize import IGNORE_INDEX, encode_record
from training.engine.inference.chat import encode_prompt

QUESTION = "What is the capital of Thailand?"


def training_prompt_ids(tokenizer: Any, fields: dict[str, str], template: str, custom="") -> list:
    """The masked (prompt) tokens that training put before this row's answer."""
    record = Record(
        turns=[Turn("user", fields["instruction"]), Turn("assistant", fields["output"])],
        system=fields.get("system", ""),
        fields=fields,
    )
    ids, labels = encode_record(tokenizer, record, template, custom)
    return ids[: labels.index(next(label for label in labels if label != IGNORE_INDEX))]


def chat_ids(tokenizer: Any, messages: list[dict], template: str, custom: str = "") -> list:
    return encode_prompt(tokenizer, messages, template, custom)["input_ids"][0].tolist()


def test_an_alpaca_run_is_asked_in_alpaca_form(tokenizer: Any) -> None:
    fields = {"instruction": QUESTION, "input": "", "output": '{"answer": "Bangkok"}'}

    ids = chat_ids(tokenizer, [{"role": "user", "content": QUESTION}], "alpaca")

    assert ids == training_prompt_ids(tokenizer, fields, "alpaca")
    assert tokenizer.decode(ids).endswith("### Response:\n")


def test_the_system_prompt_takes_the_alpaca_header_place_as_in_training(tokenizer: Any) -> None:
    fields = {"instruction": QUESTION, "input": "", "output": "x", "system": "Answer in JSON."}
    messages = [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": QUESTION},
    ]

    ids = chat_ids(tokenizer, messages, "alpaca")

    assert ids == training_prompt_ids(tokenizer, fields, "alpaca")
    assert tokenizer.decode(ids).startswith("Answer in JSON.\n\n### Instruction:")


def test_a_custom_template_gets_the_question_and_empty_other_placeholders(tokenizer: Any) -> None:
    custom = "Context: {context}\nQ: {instruction}\nA: {output}"
    fields = {"instruction": QUESTION, "input": "", "output": "Bangkok", "context": ""}

    ids = chat_ids(tokenizer, [{"role": "user", "content": QUESTION}], "custom", custom)

    assert ids == training_prompt_ids(tokenizer, fields, "custom", custom)
    assert tokenizer.decode(ids) == f"Context: \nQ: {QUESTION}\nA: "


def test_the_model_template_renders_the_chat_with_the_tokenizer(tokenizer: Any) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    assert chat_ids(tokenizer, messages, "model") == list(expected["input_ids"])


def test_a_template_without_a_text_prompt_is_refused() -> None:
    with pytest.raises(TemplateError):
        inference_prompt(QUESTION, "", "custom", "no placeholder for the answer")
    with pytest.raises(TemplateError):
        inference_prompt(QUESTION, "", "model")
