"""Chat: one loaded model answers as base and as tuned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.engine.inference.chat import ChatModel

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def chat(model_dir: Path, trained_run: dict[str, Any]) -> ChatModel:
    return ChatModel(model_dir, trained_run["result"].adapter_dir)


def test_it_compares_base_and_tuned_with_one_model(chat: ChatModel) -> None:
    answers = chat.compare(MESSAGES, max_new_tokens=12)

    assert set(answers) == {"base", "tuned"}
    assert answers["base"] and answers["tuned"]
    assert answers["base"] == chat.generate(MESSAGES, max_new_tokens=12, use_adapter=False)
    assert answers["tuned"] == chat.generate(MESSAGES, max_new_tokens=12)


def test_it_answers_like_the_plain_base_model_with_the_adapter_off(
    chat: ChatModel, model_dir: Path
) -> None:
    plain = ChatModel(model_dir)

    assert plain.generate(MESSAGES, max_new_tokens=12) == chat.generate(
        MESSAGES, max_new_tokens=12, use_adapter=False
    )


def test_it_streams_what_greedy_generation_decodes_to(chat: ChatModel) -> None:
    import torch

    chunks = list(chat.stream(MESSAGES, max_new_tokens=12))

    inputs = chat._inputs(MESSAGES)
    with torch.inference_mode():
        output = chat.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert len(chunks) > 1
    assert (
        "".join(chunks).strip()
        == chat.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
    )


def test_it_samples_when_temperature_is_positive(chat: ChatModel) -> None:
    reply = chat.generate(MESSAGES, max_new_tokens=8, temperature=0.9, top_p=0.9)

    assert isinstance(reply, str) and reply
