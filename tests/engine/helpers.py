"""Alpaca rows (plain dicts) as the engine's records, for tests that build rows inline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.engine.data.prompts import PROMPT, render_segments
from training.engine.data.records import DatasetError, DataSpec, read_dataset
from training.engine.data.shapes import Record, normalise
from training.engine.data.tokenize import Example, tokenize_record, tokenize_records


def alpaca(row: Record | dict[str, str]) -> Record:
    """A dict with instruction, optional input, and output, normalised like a file's row."""
    if isinstance(row, Record):
        return row
    record, problems = normalise(row, "alpaca", {}, 1)
    if record is None:
        raise DatasetError(problems)
    return record


def read_alpaca(path: Path | str) -> list[dict[str, str]]:
    """An Alpaca JSONL file's rows as instruction, input and output (validated)."""
    return [
        {k: r.fields[k] for k in ("instruction", "input", "output")}
        for r in read_dataset(path, DataSpec())
    ]


def chat_messages(row: dict[str, str]) -> list[dict[str, str]]:
    return [{"role": t.role, "content": t.content} for t in alpaca(row).turns]


def prompt_and_full(tokenizer: Any, row: dict[str, str]) -> tuple[str, str]:
    """The chat-template text up to the assistant header, and the whole conversation."""
    segments = render_segments(tokenizer, alpaca(row), "model")
    prompt = "".join(text for text, kind in segments if kind == PROMPT)
    return prompt, "".join(text for text, _ in segments)


def tokenize_rows(
    tokenizer: Any, rows: list[Any], max_seq_len: int, train_on_prompt: bool = False, **kwargs: Any
) -> tuple[list[Example], int]:
    return tokenize_records(
        tokenizer, [alpaca(r) for r in rows], max_seq_len, train_on_prompt, **kwargs
    )


def tokenize_example(
    tokenizer: Any, row: Any, max_seq_len: int, train_on_prompt: bool = False
) -> Example:
    return tokenize_record(tokenizer, alpaca(row), max_seq_len, train_on_prompt)[0]
