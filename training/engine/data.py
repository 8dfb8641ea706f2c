"""Alpaca-style JSONL datasets: validation with precise errors, chat formatting, masking.

A row is ``{"instruction": str, "input": str (optional), "output": str}``; other
keys are ignored so datasets exported by other tools load unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_REPORTED_PROBLEMS = 20
IGNORE_INDEX = -100  # label value that torch's cross entropy skips
REQUIRED_FIELDS = ("instruction", "output")
OPTIONAL_FIELDS = ("input",)


@dataclass(frozen=True)
class Problem:
    """One reason a dataset was rejected; ``line`` is 1-based, None for the whole file."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.line is None else f"line {self.line}"
        if self.field is not None:
            where += f': field "{self.field}"'
        return f"{where}: {self.message}"


class DatasetError(Exception):
    """A dataset is invalid. ``problems`` holds at most the first 20; ``total`` counts all."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        self.total = len(problems) if total is None else total
        super().__init__(self._summary())

    def _summary(self) -> str:
        lines = [str(p) for p in self.problems]
        hidden = self.total - len(self.problems)
        if hidden > 0:
            lines.append(f"... and {hidden} more problem(s)")
        return "\n".join(lines)


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages a user understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def read_alpaca_jsonl(path: Path | str) -> list[dict[str, str]]:
    """Read and validate an Alpaca JSONL file; raise :class:`DatasetError` on any problem.

    Returns rows normalised to exactly ``instruction``, ``input`` and ``output``.
    """
    return scan_alpaca_jsonl(path)[1]


def scan_alpaca_jsonl(
    path: Path | str, keep: int | None = None
) -> tuple[int, list[dict[str, str]]]:
    """Validate every line; return the row count and the first ``keep`` rows (all if None).

    The file is read line by line, so with a small ``keep`` memory stays flat however
    large the file is. Raises :class:`DatasetError` with the first problems found.
    """
    rows: list[dict[str, str]] = []
    problems: list[Problem] = []
    total = count = 0
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            row, line_problems = parse_line(raw, line_no)
            total += len(line_problems)
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.extend(line_problems)
            if row is not None and not line_problems:
                count += 1
                if keep is None or len(rows) < keep:
                    rows.append(row)
    if total:
        raise DatasetError(problems, total)
    if not count:
        raise DatasetError([Problem(None, None, "file is empty: expected at least one JSON line")])
    return count, rows


def parse_line(raw: bytes, line_no: int) -> tuple[dict[str, str] | None, list[Problem]]:
    """Parse one JSONL line. Returns (None, []) for a blank line."""
    if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # editors on Windows write a UTF-8 byte-order mark
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(line_no, None, f"not valid UTF-8 (byte {exc.start + 1})")]
    if not text.strip():
        return None, []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [Problem(line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})")]
    except RecursionError:
        return None, [Problem(line_no, None, "not valid JSON (nested too deeply)")]
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
        return None, [Problem(line_no, None, f"not valid JSON ({exc})")]
    if not isinstance(value, dict):
        got = json_type_name(value)
        return None, [Problem(line_no, None, f"expected a JSON object, got {got}")]
    return validate_row(value, line_no)


def validate_row(value: dict[str, Any], line_no: int) -> tuple[dict[str, str], list[Problem]]:
    """Check the Alpaca fields of one parsed object."""
    problems: list[Problem] = []
    row: dict[str, str] = {}
    for field in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        required = field in REQUIRED_FIELDS
        if field not in value or (not required and value[field] is None):
            if required:
                problems.append(Problem(line_no, field, "missing: expected a string"))
            row[field] = ""
            continue
        item = value[field]
        if not isinstance(item, str):
            problems.append(
                Problem(line_no, field, f"expected a string, got {json_type_name(item)}")
            )
        elif required and not item.strip():
            problems.append(Problem(line_no, field, 'expected a non-empty string, got ""'))
        elif not _is_encodable(item):
            # json accepts lone surrogate escapes like "\ud800"; tokenizers do not.
            problems.append(Problem(line_no, field, "contains an invalid unicode escape"))
        else:
            row[field] = item
    return row, problems


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def build_messages(row: dict[str, str]) -> list[dict[str, str]]:
    """Chat messages for a row: the user turn is the instruction plus the input, if any."""
    user = row["instruction"]
    if row.get("input"):
        user += "\n\n" + row["input"]
    return [
        {"role": "user", "content": user},
        {"role": "assistant", "content": row["output"]},
    ]


class TemplateError(ValueError):
    """The chat template renders the prompt differently inside the full conversation."""


def render_prompt_and_full(tokenizer: Any, row: dict[str, str]) -> tuple[str, str]:
    """The chat-template text up to the assistant header, and the whole conversation."""
    messages = build_messages(row)
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise TemplateError("the chat template's prompt is not a prefix of the full conversation")
    return prompt, full


def tokenize_example(
    tokenizer: Any, row: dict[str, str], max_seq_len: int, train_on_prompt: bool = False
) -> dict[str, list[int]]:
    """Token ids and labels for one row, truncated to ``max_seq_len``.

    The prompt and the response are tokenized separately and concatenated: that is
    exactly what the model sees at inference (prompt ids, then generated ids), and it
    makes the masking boundary exact. Labels are -100 on the prompt (unless
    ``train_on_prompt``) and on anything the template adds after the end-of-turn
    token, so the model learns the answer and when to stop.
    """
    prompt_text, full_text = render_prompt_and_full(tokenizer, row)
    prompt_ids = _encode(tokenizer, prompt_text)
    response_ids = _encode(tokenizer, full_text[len(prompt_text) :])
    trained = _trained_response_length(tokenizer, response_ids)
    input_ids = prompt_ids + response_ids
    prompt_labels = prompt_ids if train_on_prompt else [IGNORE_INDEX] * len(prompt_ids)
    labels = prompt_labels + response_ids[:trained] + [IGNORE_INDEX] * (len(response_ids) - trained)
    return {"input_ids": input_ids[:max_seq_len], "labels": labels[:max_seq_len]}


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The template already wrote every special token, so the tokenizer must add none.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _trained_response_length(tokenizer: Any, response_ids: list[int]) -> int:
    """Number of response tokens to train: up to and including the last end-of-turn token."""
    eos_id = tokenizer.eos_token_id
    for i in range(len(response_ids) - 1, -1, -1):
        if response_ids[i] == eos_id:
            return i + 1
    return len(response_ids)


def has_trained_tokens(example: dict[str, list[int]]) -> bool:
    """False when truncation cut away every trained token (the caller drops the row).

    The first position is skipped: nothing precedes it, so it is never predicted.
    """
    return any(label != IGNORE_INDEX for label in example["labels"][1:])


def tokenize_rows(
    tokenizer: Any,
    rows: Iterable[dict[str, str]],
    max_seq_len: int,
    train_on_prompt: bool = False,
) -> tuple[list[dict[str, list[int]]], int]:
    """Tokenize rows; returns (examples, number dropped for having no trained token)."""
    examples: list[dict[str, list[int]]] = []
    dropped = 0
    for row in rows:
        example = tokenize_example(tokenizer, row, max_seq_len, train_on_prompt)
        if has_trained_tokens(example):
            examples.append(example)
        else:
            dropped += 1
    return examples, dropped
