"""Whole files as validated records: the first three stages of the data pipeline.

A file is read by format (:mod:`.formats`), each row normalised by shape and column
mapping (:mod:`.shapes`) and checked against its prompt template (:mod:`.prompts`).
:class:`DataSpec` holds those choices; a problem anywhere is reported with its line or
item, field and what was expected (:class:`DatasetError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.engine.data.formats import (
    FORMATS,
    TEXT_SPLITS,
    Problem,
    Raw,
    read_raw,
    read_region,
    unit_of,
)
from training.engine.data.prompts import (
    TEMPLATES,
    TemplateError,
    check_custom_template,
    check_template,
)
from training.engine.data.shapes import (
    MappingError,
    Record,
    check_mapping,
    columns_of,
    detect_shape,
    normalise,
)

MAX_REPORTED_PROBLEMS = 20
PROGRESS_EVERY = 5000
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
    return inspect_rows(read_raw(path, fmt, text_split), fmt)


def inspect_rows(raws: Iterator[Raw], fmt: str) -> Inspection:
    """:func:`inspect_file` of records already being read (a file, or a piece of one)."""
    rows: list[Any] = []
    problems: list[Problem] = []
    for _, value, problem in raws:
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
    return _records(read_raw(path, spec.format, spec.text_split), spec)


def _records(raws: Iterator[Raw], spec: DataSpec) -> Iterator[tuple[Record | None, list[Problem]]]:
    unit = unit_of(spec.format)
    for line, value, problem in raws:
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
    path: Path | str,
    spec: DataSpec,
    keep: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, list[Record]]:
    """Validate every row; return the row count and the first ``keep`` records (all if None).

    Memory stays flat with a small ``keep``. ``on_progress(rows_read)`` is called every
    :data:`PROGRESS_EVERY` rows. Raises :class:`DatasetError` with the first problems
    found and the count of all of them.
    """
    spec.check()
    records: list[Record] = []
    problems: list[Problem] = []
    total = count = 0
    for rows, (record, row_problems) in enumerate(iter_records(path, spec), start=1):
        total += len(row_problems)
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.extend(row_problems)
        if record is not None:
            count += 1
            if keep is None or len(records) < keep:
                records.append(record)
        if on_progress is not None and rows % PROGRESS_EVERY == 0:
            on_progress(rows)
    if total:
        raise DatasetError(problems, total)
    if not count:
        raise file_error(EMPTY_MESSAGES[spec.format])
    return count, records


@dataclass
class RegionScan:
    """The rows of one piece of a file: how many are valid, the first kept, the problems."""

    rows: int
    records: list[Record]
    problems: list[Problem]
    total: int  # problems found, of which the first 20 are in ``problems``


def scan_region(
    path: Path | str, spec: DataSpec, start: int, end: int, first_line: int, keep: int = 0
) -> RegionScan:
    """Validate the rows in bytes ``[start, end)`` of a file whose rows are lines (see
    :func:`formats.read_region`), numbered from ``first_line``; problems are returned,
    not raised, so that an upload can be checked piece by piece as it arrives."""
    spec.check()
    raws = read_region(path, spec.format, spec.text_split, start, end, first_line)
    scan = RegionScan(0, [], [], 0)
    for record, row_problems in _records(raws, spec):
        scan.total += len(row_problems)
        if len(scan.problems) < MAX_REPORTED_PROBLEMS:
            scan.problems.extend(row_problems[: MAX_REPORTED_PROBLEMS - len(scan.problems)])
        if record is not None:
            scan.rows += 1
            if len(scan.records) < keep:
                scan.records.append(record)
    return scan


def inspect_region(
    path: Path | str, fmt: str, text_split: str, start: int, end: int, first_line: int
) -> Inspection:
    """:func:`inspect_file` of a piece of a file whose rows are lines."""
    return inspect_rows(read_region(path, fmt, text_split, start, end, first_line), fmt)


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
