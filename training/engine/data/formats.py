"""Streaming readers for dataset files: JSONL, JSON arrays, CSV and plain text.

Each reader yields ``(position, value, problem)`` one record at a time, so memory
stays flat however large the file is; only one record (at most
:data:`MAX_RECORD_BYTES`) is ever held. ``value`` is a parsed JSON value, a CSV row
as a dict, or a string of text; ``problem`` is set (and ``value`` None) when that
record cannot be read. Errors after which the rest of the file cannot be trusted
(broken JSON structure, broken CSV quoting) end the stream with one last problem.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

FORMATS = ("jsonl", "json", "csv", "txt")
# The file name endings that announce each format.
SUFFIXES = {"jsonl": (".jsonl", ".ndjson"), "json": (".json",), "csv": (".csv",), "txt": (".txt",)}
TEXT_SPLITS = ("line", "blank_line")
MAX_RECORD_BYTES = 8 * 2**20  # one sample; far beyond any max_seq_len worth training
MAX_JSON_DEPTH = 64
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_READ_CHUNK = 2**20

# csv's default field limit is 128 KiB; a long answer can pass that, so raise it, but
# keep it bounded so a hostile file cannot make one field hold the whole file.
csv.field_size_limit(MAX_RECORD_BYTES)


@dataclass(frozen=True)
class Problem:
    """One reason a dataset was rejected.

    ``line`` is the 1-based position (a line, or an item of a JSON array: see
    ``unit``), None for the whole file.
    """

    line: int | None
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = "file" if self.line is None else f"{self.unit} {self.line}"
        if self.field is not None:
            where += f': field "{self.field}"'
        return f"{where}: {self.message}"


Raw = tuple[int, Any, Problem | None]


def format_for_name(filename: str) -> str | None:
    """The format a file name announces (``.jsonl``, ``.json``, ``.csv``, ``.txt``)."""
    suffix = Path(filename).suffix.lower()
    return next((fmt for fmt, endings in SUFFIXES.items() if suffix in endings), None)


def unit_of(fmt: str) -> str:
    return "item" if fmt == "json" else "line"


def streamable(fmt: str, text_split: str = "line") -> bool:
    """Whether a file can be checked piece by piece as it arrives: every sample is one
    line (JSON Lines, or plain text with one sample per line), so any run of whole
    lines reads the same alone as within the file."""
    return fmt == "jsonl" or (fmt == "txt" and text_split == "line")


def read_region(
    path: Path | str, fmt: str, text_split: str, start: int, end: int, first_line: int = 1
) -> Iterator[Raw]:
    """Records of bytes ``[start, end)`` of a :func:`streamable` file, numbered from
    ``first_line``: ``start`` begins a line and ``end`` ends one (or the file)."""
    if not streamable(fmt, text_split):
        raise ValueError(f"{fmt} ({text_split}) cannot be read in pieces")
    with open(path, "rb") as fh:
        skipped = 0
        if start == 0:
            problem = _check_start(fh)
            if problem:
                yield 0, None, problem
                return
            skipped = fh.tell()
        else:
            fh.seek(start)
        lines = _lines(fh, first_line, end - start - skipped)
        if fmt == "txt":
            yield from _read_txt(lines, text_split)
        else:
            yield from _read_jsonl(lines)


def read_raw(path: Path | str, fmt: str, text_split: str = "line") -> Iterator[Raw]:
    """Records of a file, streamed. Raises nothing for bad content: problems are yielded."""
    readers = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv}
    with open(path, "rb") as fh:
        problem = _check_start(fh)
        if problem:
            yield 0, None, problem
            return
        if fmt == "txt":
            yield from _read_txt(_lines(fh), text_split)
        else:
            yield from readers[fmt](_lines(fh) if fmt == "jsonl" else fh)


def _check_start(fh: BinaryIO) -> Problem | None:
    """Skip a UTF-8 byte-order mark; refuse UTF-16, which needs converting first."""
    head = fh.read(3)
    if head.startswith(UTF16_BOMS):
        return Problem(
            None,
            None,
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8",
        )
    if head != UTF8_BOM:
        fh.seek(0)
    return None


Lines = Iterator[tuple[int, bytes | None]]


def _lines(fh: BinaryIO, first_line: int = 1, size: float = math.inf) -> Lines:
    """Raw lines with their numbers (from ``first_line``), within the next ``size``
    bytes; None for a line over the record limit.

    An over-long line is skipped in bounded chunks, never held whole.
    """
    line_no = first_line - 1
    left = size
    while left > 0:
        raw = fh.readline(int(min(left, MAX_RECORD_BYTES + 1)))
        if not raw:
            return
        left -= len(raw)
        line_no += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n") and left > 0:
                raw = fh.readline(int(min(left, _READ_CHUNK)))
                left -= len(raw)
            yield line_no, None
        else:
            yield line_no, raw


def too_long(line_no: int | None, unit: str = "line") -> Problem:
    limit = MAX_RECORD_BYTES // 2**20
    return Problem(line_no, None, f"longer than the {limit} MB limit for one sample", unit)


def _decode(raw: bytes, line_no: int) -> tuple[str | None, Problem | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, Problem(line_no, None, f"not valid UTF-8 (byte {exc.start + 1})")


def _nul(text: str, line_no: int) -> Problem | None:
    column = text.find("\x00")
    if column < 0:
        return None
    return Problem(
        line_no, None, f"contains a NUL byte at column {column + 1}: expected text, not binary data"
    )


# --- JSONL ---


def _read_jsonl(lines: Lines) -> Iterator[Raw]:
    for line_no, raw in lines:
        if raw is None:
            yield line_no, None, too_long(line_no)
            continue
        text, problem = _decode(raw, line_no)
        if problem or text is None:
            yield line_no, None, problem
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield (
                line_no,
                None,
                Problem(line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})"),
            )
        except RecursionError:
            yield line_no, None, Problem(line_no, None, "not valid JSON (nested too deeply)")
        except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
            yield line_no, None, Problem(line_no, None, f"not valid JSON ({exc})")
        else:
            yield line_no, value, None


# --- JSON array, streamed with ijson ---


class _TokenTooLong(Exception):
    pass


class _GuardedReader:
    """A file wrapper that stops a single JSON token from growing past the record limit.

    yajl hands over a string only once it has read all of it, so a hostile file with
    one 300 MB string would be held whole. Events arrive after every block read; when
    more than the limit has been read without one, a single token is that long.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.unseen = 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.unseen += len(data)
        if self.unseen > MAX_RECORD_BYTES + _READ_CHUNK:
            raise _TokenTooLong
        return data


def _read_json(fh: BinaryIO) -> Iterator[Raw]:
    """Items of a top-level JSON array, built one at a time from ijson's parse events.

    ijson's own item builder has no depth limit (a file of nested brackets exhausts
    memory), so items are assembled here with one.
    """
    import ijson

    reader = _GuardedReader(fh)

    def events() -> Iterator[tuple[str, Any]]:
        # A block of 1 MB: yajl copies a long string once per block, so small blocks
        # make long strings quadratic.
        for event in ijson.basic_parse(reader, use_float=True, buf_size=_READ_CHUNK):
            reader.unseen = 0
            yield event

    stream = events()
    item = 0
    building = False  # inside item ``item``, rather than between two items
    try:
        first = next(stream, None)
        if first is None:
            return
        if first[0] != "start_array":
            got = {"start_map": "an object"}.get(first[0], "a single value")
            message = f"expected a JSON array of objects at the top level, got {got}"
            if first[0] == "start_map":
                message += " (for one object per line, name the file .jsonl)"
            yield 0, None, Problem(None, None, message)
            return
        for event, value in stream:
            if event == "end_array":
                break
            item += 1
            building = True
            built = _build(event, value, stream)
            building = False
            if isinstance(built, Problem):
                yield item, None, Problem(item, None, built.message, "item")
                return
            yield item, built, None
        for _ in stream:  # ijson raises on trailing garbage
            pass
    except _TokenTooLong:
        where = item if building else item + 1
        yield where, None, too_long(where, "item")
    except ijson.JSONError as exc:
        yield item, None, Problem(None, None, _json_error(str(exc)))


def _json_error(text: str) -> str:
    """yajl's message, e.g. "lexical error: invalid char in json text", with its context.

    ijson parses ahead in blocks, so the item being read when the error surfaces is not
    reliable; the text around the error is, and it is what a user can search for.
    """
    clean = text.strip().removeprefix("b'").removeprefix('b"').rstrip("'\"")
    lines = [line.strip() for line in clean.replace("\\n", "\n").splitlines() if line.strip()]
    detail = lines[0].split(":", 1)[-1].strip(" .") if lines else "unexpected content"
    near = lines[1] if len(lines) > 2 else ""
    return f"not valid JSON ({detail})" + (f" near: {near[:80]}" if near else "")


def _build(event: str, value: Any, events: Iterator[tuple[str, Any]]) -> Any:
    """One JSON value from the event stream, bounded in depth and size."""
    if event not in ("start_map", "start_array"):
        return value
    root: Any = {} if event == "start_map" else []
    stack: list[Any] = [root]
    keys: list[str | None] = [None]
    size = 0
    for event, value in events:
        if event in ("end_map", "end_array"):
            stack.pop()
            keys.pop()
            if not stack:
                return root
            continue
        if event == "map_key":
            keys[-1] = value
            continue
        if event in ("start_map", "start_array"):
            if len(stack) >= MAX_JSON_DEPTH:
                return Problem(None, None, f"nested more than {MAX_JSON_DEPTH} levels deep")
            child: Any = {} if event == "start_map" else []
        else:
            child = value
            size += len(value) if isinstance(value, str) else 8
            if size > MAX_RECORD_BYTES:
                return Problem(None, None, too_long(None).message)
        parent = stack[-1]
        if isinstance(parent, dict):
            parent[keys[-1]] = child
        else:
            parent.append(child)
        if event in ("start_map", "start_array"):
            stack.append(child)
            keys.append(None)
    return root


# --- CSV ---


class _StopRead(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _text_lines(lines: Lines) -> Iterator[tuple[int, str]]:
    for line_no, raw in lines:
        if raw is None:
            raise _StopRead(too_long(line_no))
        text, problem = _decode(raw, line_no)
        if problem or text is None:
            raise _StopRead(problem or too_long(line_no))
        nul = _nul(text, line_no)
        if nul:
            raise _StopRead(nul)
        yield line_no, text


def _read_csv(fh: BinaryIO) -> Iterator[Raw]:
    """Rows as dicts keyed by the header; each checked against the header's width."""
    # strict: an unclosed quote is an error, not a field that runs to the end of the file
    reader = csv.reader((text for _, text in _text_lines(_lines(fh))), strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            line_no, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                problem = _check_header(header, line_no)
                if problem:
                    yield line_no, None, problem
                    return
                continue
            if len(row) != len(header):
                message = f"expected {len(header)} columns (as in the header), got {len(row)}"
                yield line_no, None, Problem(line_no, None, message)
                continue
            yield line_no, dict(zip(header, row, strict=True)), None
    except _StopRead as stop:
        yield stop.problem.line or 0, None, stop.problem
    except csv.Error as exc:
        line_no = reader.line_num
        if "field larger than field limit" in str(exc):
            yield line_no, None, too_long(line_no)
        else:
            yield line_no, None, Problem(line_no, None, f"not valid CSV ({exc})")


def _check_header(header: list[str], line_no: int) -> Problem | None:
    if any(not name for name in header):
        position = header.index("") + 1
        return Problem(line_no, None, f"the header's column {position} has no name")
    seen = set()
    for name in header:
        if name in seen:
            return Problem(line_no, None, f'the header names column "{name}" twice')
        seen.add(name)
    return None


# --- Plain text ---


def _read_txt(lines: Lines, text_split: str) -> Iterator[Raw]:
    """One sample per non-blank line, or per block of lines separated by blank lines."""
    block: list[str] = []
    block_start = 0
    block_size = 0
    try:
        for line_no, text in _text_lines(lines):
            line = text.rstrip("\r\n")
            if text_split == "line":
                if line.strip():
                    yield line_no, line, None
                continue
            if line.strip():
                if not block:
                    block_start = line_no
                block.append(line)
                block_size += len(line)
                if block_size > MAX_RECORD_BYTES:
                    yield block_start, None, too_long(block_start)
                    return
            elif block:
                yield block_start, "\n".join(block), None
                block, block_size = [], 0
    except _StopRead as stop:
        yield stop.problem.line or 0, None, stop.problem
        return
    if block:
        yield block_start, "\n".join(block), None
