"""Templates and masking: which tokens are trained, for chats, Alpaca, custom and plain text."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.helpers import tokenize_rows
from training.engine.data.prompts import ALPACA_HEADER, TemplateError, render_segments
from training.engine.data.shapes import Record, Turn, normalise
from training.engine.data.tokenize import (
    IGNORE_INDEX,
    encode_record,
    preview_tokens,
    tokenize_record,
)

CHAT = Record(
    [
        Turn("user", "Hi"),
        Turn("assistant", "Hello!"),
        Turn("user", "Bye"),
        Turn("assistant", "See you."),
    ],
    system="Be brief.",
)


def single(instruction: str, output: str, **extra: str) -> Record:
    record, problems = normalise(
        {"instruction": instruction, "output": output, **extra}, "alpaca", {}, 1
    )
    assert record is not None, problems
    return record


def trained_text(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    return tokenizer.decode(
        [i for i, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    )


def test_a_multi_turn_chat_trains_every_assistant_turn_and_masks_the_rest(tokenizer: Any) -> None:
    ids, labels = encode_record(tokenizer, CHAT)
    messages = [{"role": "system", "content": "Be brief."}] + [
        {"role": t.role, "content": t.content} for t in CHAT.turns
    ]
    full = tokenizer.apply_chat_template(messages, tokenize=False)

    eos = tokenizer.eos_token
    assert trained_text(tokenizer, ids, labels) == f"Hello!{eos}See you.{eos}"
    # Tokenized piece by piece, the ids are still those of the whole conversation.
    assert ids == tokenizer(full, add_special_tokens=False)["input_ids"]


def test_each_chat_prompt_is_tokenized_as_at_inference(tokenizer: Any) -> None:
    ids, labels = encode_record(tokenizer, CHAT)
    messages = [{"role": "system", "content": "Be brief."}] + [
        {"role": t.role, "content": t.content} for t in CHAT.turns[:3]
    ]
    second_prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=False
    )

    assert ids[: len(second_prompt)] == second_prompt
    assert labels[len(second_prompt) - 1] == IGNORE_INDEX
    assert labels[len(second_prompt)] == ids[len(second_prompt)]  # "See" is trained


def test_train_on_prompt_trains_user_turns_too_but_never_the_text_after_eos(tokenizer: Any) -> None:
    ids, labels = encode_record(tokenizer, CHAT, train_on_prompt=True)

    masked = [i for i, label in enumerate(labels) if label == IGNORE_INDEX]
    assert [tokenizer.decode(ids[i]) for i in masked] == ["\n", "\n"]


def test_the_alpaca_template_writes_the_classic_text_and_trains_the_response_and_eos(
    tokenizer: Any,
) -> None:
    record = single("Translate", "hello", input="hola")

    segments = render_segments(tokenizer, record, "alpaca")
    ids, labels = encode_record(tokenizer, record, "alpaca")

    assert segments[0][0].endswith(
        "### Instruction:\nTranslate\n\n### Input:\nhola\n\n### Response:\n"
    )
    assert trained_text(tokenizer, ids, labels) == "hello" + tokenizer.eos_token
    assert ids[-1] == tokenizer.eos_token_id and labels[-1] == tokenizer.eos_token_id
    assert render_segments(tokenizer, single("Hi", "x"), "alpaca")[0][0].startswith(ALPACA_HEADER)
    assert "### Input" not in render_segments(tokenizer, single("Hi", "x"), "alpaca")[0][0]


def test_a_custom_template_fills_placeholders_and_trains_from_output(tokenizer: Any) -> None:
    record = single("2 + 2", "4", topic="maths")
    template = "[{topic}] {{literal}} Q: {instruction}\nA: {output}."

    segments = render_segments(tokenizer, record, "custom", template)
    ids, labels = encode_record(tokenizer, record, "custom", template)

    assert segments == [
        ("[maths] {literal} Q: 2 + 2\nA: ", "prompt"),
        ("4." + tokenizer.eos_token, "response"),
    ]
    assert trained_text(tokenizer, ids, labels) == "4." + tokenizer.eos_token


def test_an_unknown_placeholder_is_a_clear_error(tokenizer: Any) -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{question\}"):
        render_segments(tokenizer, single("a", "b"), "custom", "{question} {output}")


def test_plain_text_trains_every_token_ends_with_eos_and_is_cut_into_windows(
    tokenizer: Any,
) -> None:
    record = Record(text="word " * 40)
    ids, labels = encode_record(tokenizer, record)

    examples = tokenize_record(tokenizer, record, max_seq_len=16)

    assert labels == ids and ids[-1] == tokenizer.eos_token_id
    assert [len(e["input_ids"]) for e in examples] == [16, 16, len(ids) - 32]
    assert [i for e in examples for i in e["input_ids"]] == ids


def test_tokenize_rows_uses_the_chosen_template(tokenizer: Any) -> None:
    (chat,), _ = tokenize_rows(tokenizer, [single("Hi", "Yo")], 512)
    (alpaca,), _ = tokenize_rows(tokenizer, [single("Hi", "Yo")], 512, template="alpaca")

    assert chat["input_ids"] != alpaca["input_ids"]
    assert "### Response:" in tokenizer.decode(alpaca["input_ids"])


def test_the_preview_marks_trained_masked_and_eos_tokens(tokenizer: Any) -> None:
    tokens, total = preview_tokens(tokenizer, single("Hi", "Yo"), "model")

    assert total == len(tokens)
    # SmolLM2's template adds a default system turn: system, user, then the answer.
    assert "".join(t.text for t in tokens).count(tokenizer.eos_token) == 3
    eos = [t for t in tokens if t.eos]
    assert [t.trained for t in eos] == [False, False, True]  # only the answer's own EOS is trained
    assert "".join(t.text for t in tokens if t.trained) == "Yo" + tokenizer.eos_token


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.lists(
        st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=20).filter(
            str.strip
        ),
        min_size=2,
        max_size=6,
    )
)
def test_any_chat_trains_exactly_its_assistant_turns(tokenizer: Any, contents: list[str]) -> None:
    if len(contents) % 2:
        contents = contents[:-1]
    turns = [Turn("user" if i % 2 == 0 else "assistant", c) for i, c in enumerate(contents)]
    ids, labels = encode_record(tokenizer, Record(turns))

    pieces: list[list[int]] = []
    current: list[int] = []
    for i, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            current.append(i)
        elif current:
            pieces.append(current)
            current = []
    eos = tokenizer.eos_token
    assert [tokenizer.decode(p) for p in pieces] == [t.content + eos for t in turns[1::2]]


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.lists(
        st.sampled_from(
            ["{", "}", "{{", "}}", "{output}", "{instruction}", "{nope}", "{0}", "{a.b}"]
        )
        | st.text(max_size=4),
        max_size=8,
    ).map("".join)
)
def test_any_custom_template_renders_or_raises_a_template_error(
    tokenizer: Any, template: str
) -> None:
    record = single("the question", "the answer")
    try:
        segments = render_segments(tokenizer, record, "custom", template)
    except TemplateError as exc:
        assert str(exc)
    else:
        text = "".join(t for t, _ in segments)
        trained = "".join(t for t, kind in segments if kind == "response")
        assert trained.startswith("the answer") and text.endswith(tokenizer.eos_token)
