"""Dataset validation, chat formatting and loss masking."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.helpers import (
    chat_messages,
    prompt_and_full,
    read_alpaca,
    tokenize_example,
    tokenize_rows,
)
from training.engine.data.records import DatasetError
from training.engine.data.tokenize import IGNORE_INDEX

GOOD = {"instruction": "Say hi", "input": "", "output": "hi"}


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(DatasetError) as info:
        read_alpaca(path)
    return [str(p) for p in info.value.problems]


def test_it_reads_rows_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        json.dumps(GOOD),
        "",
        "   ",
        json.dumps({"instruction": "Add", "input": "1 and 2", "output": "3", "extra": 1}),
    )

    rows = read_alpaca(path)

    assert rows == [GOOD, {"instruction": "Add", "input": "1 and 2", "output": "3"}]


def test_it_accepts_a_missing_or_null_input(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        json.dumps({"instruction": "a", "output": "b"}),
        json.dumps({"instruction": "a", "input": None, "output": "b"}),
    )

    assert [row["input"] for row in read_alpaca(path)] == ["", ""]


def test_it_reports_a_wrong_type_with_line_and_field(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        json.dumps(GOOD),
        "",
        json.dumps({"instruction": "x", "output": 42}),
        json.dumps({"instruction": True, "input": [1], "output": "y"}),
    )

    assert problems_of(path) == [
        'line 3: field "output": expected a string, got number',
        'line 4: field "instruction": expected a string, got boolean',
        'line 4: field "input": expected a string, got array',
    ]


def test_it_reports_invalid_json_with_its_column(tmp_path: Path) -> None:
    path = write_lines(tmp_path, json.dumps(GOOD), '{"instruction": "a" "output": "b"}')

    assert problems_of(path) == ["line 2: not valid JSON (Expecting ',' delimiter at column 21)"]


def test_it_reports_missing_and_empty_required_fields(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path, json.dumps({"input": "x"}), json.dumps({"instruction": " ", "output": "o"})
    )

    assert problems_of(path) == [
        'line 1: field "instruction": missing: expected a string',
        'line 1: field "output": missing: expected a string',
        'line 2: field "instruction": expected a non-empty string, got ""',
    ]


def test_it_rejects_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "[1, 2]", '"text"', "null")

    assert problems_of(path) == [
        "line 1: expected a JSON object, got array",
        "line 2: expected a JSON object, got string",
        "line 3: expected a JSON object, got null",
    ]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_it_rejects_an_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)

    assert problems_of(path) == ["file: file is empty: expected at least one JSON line"]


def test_it_rejects_invalid_utf8_and_lone_surrogates(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"instruction": "\xff", "output": "o"}\n{"instruction": "\\ud800", "output": "o"}\n'
    )

    assert problems_of(path) == [
        "line 1: not valid UTF-8 (byte 18)",
        'line 2: field "instruction": contains an invalid unicode escape',
    ]


def test_it_accepts_a_utf8_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode())

    assert read_alpaca(path) == [GOOD]


def test_it_reports_at_most_20_problems_but_counts_all(tmp_path: Path) -> None:
    path = write_lines(tmp_path, *["{bad"] * 30)

    with pytest.raises(DatasetError) as info:
        read_alpaca(path)

    assert len(info.value.problems) == 20
    assert info.value.total == 30
    assert str(info.value).endswith("... and 10 more problem(s)")


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=300))
def test_it_raises_only_dataset_errors_on_arbitrary_bytes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(content)
        try:
            rows = read_alpaca(path)
        except DatasetError as exc:
            assert exc.problems
        else:
            assert all(set(row) == {"instruction", "input", "output"} for row in rows)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
fields = st.sampled_from(["instruction", "input", "output", "other"])


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(st.dictionaries(fields, json_values) | json_values, min_size=1, max_size=5))
def test_it_raises_only_dataset_errors_on_arbitrary_json_lines(values: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_text("\n".join(json.dumps(v) for v in values), encoding="utf-8")
        try:
            read_alpaca(path)
        except DatasetError as exc:
            assert all(p.line is not None and 1 <= p.line <= len(values) for p in exc.problems)


def test_it_joins_instruction_and_input_for_the_user_turn() -> None:
    with_input = chat_messages({"instruction": "Translate", "input": "hola", "output": "hello"})
    without = chat_messages(GOOD)

    assert with_input == [
        {"role": "user", "content": "Translate\n\nhola"},
        {"role": "assistant", "content": "hello"},
    ]
    assert without[0] == {"role": "user", "content": "Say hi"}


ROW = {"instruction": "What is 2 + 3?", "input": "", "output": '{"answer": "5"}'}


def test_it_masks_the_prompt_and_trains_the_response_and_eos(tokenizer: Any) -> None:
    example = tokenize_example(tokenizer, ROW, max_seq_len=512)
    prompt_ids = tokenizer.apply_chat_template(
        chat_messages(ROW)[:1], add_generation_prompt=True, return_dict=False
    )
    ids, labels = example["input_ids"], example["labels"]
    trained = [i for i, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]

    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert labels[len(prompt_ids)] == ids[len(prompt_ids)]
    assert tokenizer.decode(trained) == ROW["output"] + tokenizer.eos_token
    assert trained[-1] == tokenizer.eos_token_id
    # The template's newline after <|im_end|> is input only: generation stops at eos.
    assert tokenizer.decode(ids[-1:]) == "\n" and labels[-1] == IGNORE_INDEX


@pytest.mark.parametrize(
    "output", ['{"answer": "5"}', "Hello there.", " leading space", "\n\nstarts with newlines"]
)
def test_it_keeps_the_prompt_response_boundary_exact(tokenizer: Any, output: str) -> None:
    row = {**ROW, "output": output}
    prompt_text, full_text = prompt_and_full(tokenizer, row)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]

    example = tokenize_example(tokenizer, row, max_seq_len=512)

    assert example["input_ids"][: len(prompt_ids)] == prompt_ids
    assert tokenizer.decode(example["input_ids"]) == full_text
    first_trained = example["labels"].index(next(x for x in example["labels"] if x != -100))
    assert first_trained == len(prompt_ids)


def test_it_matches_joint_tokenization_for_ordinary_answers(tokenizer: Any) -> None:
    _, full_text = prompt_and_full(tokenizer, ROW)

    example = tokenize_example(tokenizer, ROW, max_seq_len=512)

    assert example["input_ids"] == tokenizer(full_text, add_special_tokens=False)["input_ids"]


def test_it_trains_on_the_prompt_when_asked(tokenizer: Any) -> None:
    example = tokenize_example(tokenizer, ROW, max_seq_len=512, train_on_prompt=True)

    assert example["labels"][:-1] == example["input_ids"][:-1]
    assert example["labels"][-1] == IGNORE_INDEX


def test_it_truncates_and_drops_examples_with_nothing_to_train(tokenizer: Any) -> None:
    prompt_len = len(
        tokenizer.apply_chat_template(
            chat_messages(ROW)[:1], add_generation_prompt=True, return_dict=False
        )
    )

    examples, dropped = tokenize_rows(tokenizer, [ROW, ROW], max_seq_len=prompt_len)
    kept, none_dropped = tokenize_rows(tokenizer, [ROW], max_seq_len=prompt_len + 2)

    assert (examples, dropped) == ([], 2)
    assert none_dropped == 0
    assert len(kept[0]["input_ids"]) == prompt_len + 2
    assert kept[0]["labels"][-2:] == kept[0]["input_ids"][-2:]
