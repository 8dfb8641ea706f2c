"""Datasets: reading any supported file, validation with precise errors, masking.

A file is read by format (:mod:`training.engine.formats`), each row normalised by
shape and column mapping (:mod:`training.engine.shapes`), rendered by a prompt
template (:mod:`training.engine.templates`) and tokenized with labels that train
the answers only. :class:`DataSpec` holds those choices; the defaults read an
Alpaca JSONL file with the model's chat template, as the first version did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.engine.formats import FORMATS, TEXT_SPLITS, Problem, read_raw, unit_of
from training.engine.shapes import (
    SHAPES,
    MappingError,
    Record,
    Turn,
    check_mapping,
    columns_of,
    detect_shape,
    json_type_name,
    normalise,
)
from training.engine.templates import (
    PROMPT,
    TEMPLATES,
    TemplateError,
    check_custom_template,
    check_template,
    render_segments,
)

__all__ = [
    "IGNORE_INDEX",
    "SHAPES",
    "TEMPLATES",
    "DataSpec",
    "DatasetError",
    "Problem",
    "Record",
    "TemplateError",
    "Turn",
    "inspect_file",
    "json_type_name",
    "scan_dataset",
]

MAX_REPORTED_PROBLEMS = 20
IGNORE_INDEX = -100  # label value that torch's cross entropy skips
DETECT_ROWS = 50
EMPTY_MESSAGES = {
    "jsonl": "file is empty: expected at least one JSON line",
    "json": "file is empty: expected a JSON array with at least one item",
    "csv": "file is empty: expected a header row and at least one row of data",
    "txt": "file is empty: expected at least one line of text",
}


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


def file_error(message: str) -> DatasetError:
    return DatasetError([Problem(None, None, message)])


@dataclass
class DataSpec:
    """How to read a dataset file and turn its rows into training text."""

    format: str = "jsonl"
    shape: str = "alpaca"
    mapping: dict[str, str] = field(default_factory=dict)
    text_split: str = "line"
    template: str = "model"
    custom_template: str = ""

    def check(self) -> None:
        """Raise :class:`DatasetError` (a whole-file problem) for settings that cannot work."""
        try:
            if self.format not in FORMATS:
                raise MappingError(
                    f'unknown format "{self.format}": expected one of {", ".join(FORMATS)}'
                )
            if self.text_split not in TEXT_SPLITS:
                raise MappingError(f"unknown text split: expected one of {', '.join(TEXT_SPLITS)}")
            check_mapping(self.shape, self.mapping)
            if self.format == "txt" and self.shape != "text":
                raise MappingError("a .txt file holds plain text: expected the shape text")
            if self.template not in TEMPLATES:
                raise TemplateError(f"unknown template: expected one of {', '.join(TEMPLATES)}")
            if self.template == "custom":
                check_custom_template(self.custom_template)
        except ValueError as exc:
            raise file_error(str(exc)) from exc

    @classmethod
    def from_config(cls, config: Any) -> DataSpec:
        return cls(**{name: getattr(config, key) for name, key in _CONFIG_KEYS.items()})

    def config_fields(self) -> dict[str, Any]:
        """The RunConfig fields that carry this spec (the inverse of ``from_config``)."""
        return {key: getattr(self, name) for name, key in _CONFIG_KEYS.items()}


# DataSpec field -> RunConfig field
_CONFIG_KEYS = {
    "format": "dataset_format",
    "shape": "dataset_shape",
    "mapping": "dataset_mapping",
    "text_split": "dataset_text_split",
    "template": "prompt_template",
    "custom_template": "custom_template",
}


@dataclass
class Inspection:
    """What the first rows of a file look like: its columns and the shape they fit."""

    columns: list[str]
    shape: str | None
    mapping: dict[str, str]
    problems: list[Problem] = field(default_factory=list)


def inspect_file(path: Path | str, fmt: str, text_split: str = "line") -> Inspection:
    """Recognise the shape of the first rows that can be read.

    Rows that cannot be read are kept as ``problems`` (the full scan reports them
    all); a file with no readable row at all raises :class:`DatasetError`.
    """
    rows: list[Any] = []
    problems: list[Problem] = []
    for _, value, problem in read_raw(path, fmt, text_split):
        if problem is not None:
            problems.append(problem)
        else:
            rows.append(value)
        if len(rows) >= DETECT_ROWS or len(problems) >= MAX_REPORTED_PROBLEMS:
            break
    if not rows:
        raise DatasetError(problems) if problems else file_error(EMPTY_MESSAGES[fmt])
    detected = detect_shape(rows)
    shape, mapping = detected if detected else (None, {})
    return Inspection(columns_of(rows), shape, mapping, problems)


def iter_records(path: Path | str, spec: DataSpec) -> Iterator[tuple[Record | None, list[Problem]]]:
    """Every row as a record, or the problems that stop it being one."""
    unit = unit_of(spec.format)
    for line, value, problem in read_raw(path, spec.format, spec.text_split):
        if problem is not None:
            yield None, [problem]
            continue
        record, problems = normalise(value, spec.shape, spec.mapping, line, unit)
        if record is not None and not problems:
            try:
                check_template(spec.template, spec.custom_template, record)
            except TemplateError as exc:
                problems = [Problem(line, None, str(exc), unit)]
        yield (None if problems else record), problems


def scan_dataset(
    path: Path | str, spec: DataSpec, keep: int | None = None
) -> tuple[int, list[Record]]:
    """Validate every row; return the row count and the first ``keep`` records (all if None).

    Memory stays flat with a small ``keep``. Raises :class:`DatasetError` with the
    first problems found and the count of all of them.
    """
    spec.check()
    records: list[Record] = []
    problems: list[Problem] = []
    total = count = 0
    for record, row_problems in iter_records(path, spec):
        total += len(row_problems)
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.extend(row_problems)
        if record is not None:
            count += 1
            if keep is None or len(records) < keep:
                records.append(record)
    if total:
        raise DatasetError(problems, total)
    if not count:
        raise file_error(EMPTY_MESSAGES[spec.format])
    return count, records


def read_dataset(path: Path | str, spec: DataSpec | None = None) -> list[Record]:
    """All records of a valid dataset; raise :class:`DatasetError` on any problem."""
    return scan_dataset(path, spec or DataSpec())[1]


def first_records(path: Path | str, spec: DataSpec, n: int) -> list[Record]:
    """The first ``n`` rows, validated, for a preview; raise on the first problem."""
    spec.check()
    records: list[Record] = []
    for record, problems in iter_records(path, spec):
        if problems:
            raise DatasetError(problems)
        if record is not None:
            records.append(record)
            if len(records) >= n:
                break
    if not records:
        raise file_error(EMPTY_MESSAGES[spec.format])
    return records


# --- The first version's Alpaca JSONL API, kept for callers and tests ---


def read_alpaca_jsonl(path: Path | str) -> list[dict[str, str]]:
    """Read and validate an Alpaca JSONL file; rows are instruction, input and output."""
    return [_alpaca_row(r) for r in read_dataset(path)]


def scan_alpaca_jsonl(
    path: Path | str, keep: int | None = None
) -> tuple[int, list[dict[str, str]]]:
    count, records = scan_dataset(path, DataSpec(), keep)
    return count, [_alpaca_row(r) for r in records]


def _alpaca_row(record: Record) -> dict[str, str]:
    return {k: record.fields[k] for k in ("instruction", "input", "output")}


def _as_record(row: Record | dict[str, str]) -> Record:
    if isinstance(row, Record):
        return row
    record, problems = normalise(row, "alpaca", {}, 1)
    if record is None:
        raise DatasetError(problems)
    return record


def build_messages(row: dict[str, str]) -> list[dict[str, str]]:
    """Chat messages for an Alpaca row: the user turn is the instruction plus the input."""
    record = _as_record(row)
    return [{"role": t.role, "content": t.content} for t in record.turns]


def render_prompt_and_full(tokenizer: Any, row: dict[str, str]) -> tuple[str, str]:
    """The chat-template text up to the assistant header, and the whole conversation."""
    segments = render_segments(tokenizer, _as_record(row), "model")
    prompt = "".join(text for text, kind in segments if kind == PROMPT)
    return prompt, "".join(text for text, _ in segments)


# --- Tokenization and masking ---


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The template already wrote every special token, so the tokenizer must add none.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _trained_length(tokenizer: Any, response_ids: list[int]) -> int:
    """Number of response tokens to train: up to and including the last end-of-turn token."""
    eos_id = tokenizer.eos_token_id
    for i in range(len(response_ids) - 1, -1, -1):
        if response_ids[i] == eos_id:
            return i + 1
    return len(response_ids)


def encode_record(
    tokenizer: Any,
    record: Record,
    template: str = "model",
    custom_template: str = "",
    train_on_prompt: bool = False,
) -> tuple[list[int], list[int]]:
    """Token ids and labels for a whole record, before truncation.

    Each segment is tokenized on its own and the pieces concatenated: the prompt
    tokens are then exactly those the model is given at inference, and the masking
    boundary is exact. Labels are -100 on prompts (unless ``train_on_prompt``) and on
    anything a template adds after an answer's end-of-turn token.
    """
    ids: list[int] = []
    labels: list[int] = []
    for text, kind in render_segments(tokenizer, record, template, custom_template):
        piece = _encode(tokenizer, text)
        ids += piece
        if kind == PROMPT:
            labels += piece if train_on_prompt else [IGNORE_INDEX] * len(piece)
        else:
            trained = _trained_length(tokenizer, piece)
            labels += piece[:trained] + [IGNORE_INDEX] * (len(piece) - trained)
    return ids, labels


def tokenize_record(
    tokenizer: Any,
    record: Record,
    max_seq_len: int,
    train_on_prompt: bool = False,
    template: str = "model",
    custom_template: str = "",
) -> list[dict[str, list[int]]]:
    """Training examples for one record: a conversation is truncated to ``max_seq_len``;
    plain text is cut into consecutive windows, so a long document loses nothing."""
    ids, labels = encode_record(tokenizer, record, template, custom_template, train_on_prompt)
    if record.text is None:
        return [{"input_ids": ids[:max_seq_len], "labels": labels[:max_seq_len]}]
    return [
        {"input_ids": ids[i : i + max_seq_len], "labels": labels[i : i + max_seq_len]}
        for i in range(0, len(ids), max_seq_len)
    ]


def tokenize_example(
    tokenizer: Any, row: Record | dict[str, str], max_seq_len: int, train_on_prompt: bool = False
) -> dict[str, list[int]]:
    """One Alpaca row (or conversation record) with the chat template, truncated."""
    return tokenize_record(tokenizer, _as_record(row), max_seq_len, train_on_prompt)[0]


def has_trained_tokens(example: dict[str, list[int]]) -> bool:
    """False when truncation cut away every trained token (the caller drops the row).

    The first position is skipped: nothing precedes it, so it is never predicted.
    """
    return any(label != IGNORE_INDEX for label in example["labels"][1:])


def tokenize_rows(
    tokenizer: Any,
    rows: Iterable[Record | dict[str, str]],
    max_seq_len: int,
    train_on_prompt: bool = False,
    template: str = "model",
    custom_template: str = "",
) -> tuple[list[dict[str, list[int]]], int]:
    """Tokenize rows; returns (examples, number dropped for having no trained token)."""
    examples: list[dict[str, list[int]]] = []
    dropped = 0
    for row in rows:
        for example in tokenize_record(
            tokenizer, _as_record(row), max_seq_len, train_on_prompt, template, custom_template
        ):
            if has_trained_tokens(example):
                examples.append(example)
            else:
                dropped += 1
    return examples, dropped


def load_examples(tokenizer: Any, records: list[Record], config: Any) -> tuple[list[Any], int]:
    """Examples for a run: ``config`` is a RunConfig (its template and length settings)."""
    return tokenize_rows(
        tokenizer,
        records,
        config.max_seq_len,
        config.train_on_prompt,
        config.prompt_template,
        config.custom_template,
    )


@dataclass(frozen=True)
class TokenView:
    """One token of a preview: its text, whether it is trained, whether it is EOS."""

    text: str
    trained: bool
    eos: bool


def preview_tokens(
    tokenizer: Any,
    record: Record,
    template: str,
    custom_template: str = "",
    train_on_prompt: bool = False,
    max_tokens: int = 512,
) -> tuple[list[TokenView], int]:
    """The first ``max_tokens`` tokens of a record as shown in the preview, and the total."""
    ids, labels = encode_record(tokenizer, record, template, custom_template, train_on_prompt)
    eos_id = tokenizer.eos_token_id
    views = [
        TokenView(tokenizer.decode([i]), label != IGNORE_INDEX, i == eos_id)
        for i, label in zip(ids[:max_tokens], labels[:max_tokens], strict=True)
    ]
    return views, len(ids)
