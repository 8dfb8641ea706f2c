"""Files whose rows are lines, checked piece by piece as an upload arrives: the pieces
read exactly as the whole file does (rows, records, problems and their line numbers)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.engine.data.formats import MAX_RECORD_BYTES, UTF8_BOM, streamable
from training.engine.data.records import (
    DatasetError,
    DataSpec,
    inspect_region,
    scan_dataset,
    scan_region,
)

GOOD = json.dumps({"instruction": "Add", "input": "2 + 2", "output": "4"})
LINES = st.one_of(
    st.just(GOOD),
    st.just(""),  # blank lines are skipped
    st.just('{"instruction": 3}'),  # wrong type
    st.just("{not json"),
    st.text(alphabet="abc \u00e9", min_size=1, max_size=8).map(
        lambda t: json.dumps({"instruction": t, "output": t})
    ),
)


def pieces(data: bytes, cuts: list[int]) -> list[tuple[int, int]]:
    """Byte ranges ending just after a newline (or at the end), as an upload's checks cut."""
    ends = [*sorted({data.rfind(b"\n", 0, cut) + 1 for cut in cuts} - {0}), len(data)]
    starts = [0, *ends[:-1]]
    return [(a, b) for a, b in zip(starts, ends, strict=True) if b > a]


def whole_file(path: Path, spec: DataSpec) -> tuple[int, list[str], int]:
    try:
        count, _ = scan_dataset(path, spec, keep=0)
    except DatasetError as exc:
        if exc.problems[0].line is None and "empty" in exc.problems[0].message:
            return 0, [], 0  # no row at all: the upload's last step says so, not a piece
        return 0, [str(p) for p in exc.problems], exc.total
    return count, [], 0


def by_pieces(path: Path, spec: DataSpec, ranges) -> tuple[int, list[str], int]:
    rows, problems, total, line = 0, [], 0, 1
    data = path.read_bytes()
    for start, end in ranges:
        scan = scan_region(path, spec, start, end, line)
        rows += scan.rows
        problems += [str(p) for p in scan.problems]
        total += scan.total
        line += data.count(b"\n", start, end)
    return rows, problems[:20], total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(LINES, min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_it_reads_jsonl_in_pieces_as_it_reads_the_whole_file(lines, cuts, bom, final_newline):
    data = ("\n".join(lines) + ("\n" if final_newline else "")).encode()
    data = (UTF8_BOM if bom else b"") + data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_bytes(data)
        spec = DataSpec("jsonl", "alpaca")
        rows, problems, total = by_pieces(path, spec, pieces(data, cuts))
        expected_rows, expected_problems, expected_total = whole_file(path, spec)
        assert problems == expected_problems and total == expected_total
        if not expected_total:
            assert rows == expected_rows


def test_it_reads_plain_text_lines_in_pieces(tmp_path):
    data = b"one\n\ntwo\nthree\n" * 50
    path = tmp_path / "lines.txt"
    path.write_bytes(data)
    spec = DataSpec("txt", "text", text_split="line")
    assert by_pieces(path, spec, pieces(data, [7, 100, 333]))[0] == 150


def test_a_line_over_the_limit_is_reported_with_its_number(tmp_path):
    data = (GOOD + "\n").encode() + b'{"instruction": "' + b"x" * MAX_RECORD_BYTES + b'"}\n'
    path = tmp_path / "long.jsonl"
    path.write_bytes(data)
    start = len(GOOD) + 1
    scan = scan_region(path, DataSpec("jsonl", "alpaca"), start, len(data), 2)
    assert [str(p) for p in scan.problems] == ["line 2: longer than the 8 MB limit for one sample"]


def test_the_first_piece_recognises_the_shape(tmp_path):
    data = b'{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n{"pro'
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    end = data.rfind(b"\n") + 1
    inspection = inspect_region(path, "jsonl", "line", 0, end, 1)
    assert inspection.shape == "prompt_completion"
    assert inspection.columns == ["prompt", "completion"]


def test_only_formats_whose_rows_are_lines_are_read_in_pieces(tmp_path):
    assert streamable("jsonl") and streamable("txt", "line")
    assert not streamable("txt", "blank_line") and not streamable("csv") and not streamable("json")
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        scan_region(path, DataSpec("csv", "prompt_completion"), 0, 8, 1)
