"""The per-example table as CSV, streamed, with spreadsheet formulas neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from evaluations.models import Evaluation
from slmlab.csvsafe import safe_cell


def csv_chunks(evaluation: Evaluation) -> Iterator[bytes]:
    """The rows are read here, in the request's thread (an evaluation holds at most a
    few thousand); the CSV is written as the download streams."""
    return _chunks(list(evaluation.metrics), list(evaluation.rows.all()))


def _chunks(names: list[str], rows: list) -> Iterator[bytes]:
    header = ["index", "input", "expected", "base_output", "tuned_output"]
    header += [f"base_{n}" for n in names] + [f"tuned_{n}" for n in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        tuned = row.tuned_scores or {}
        cells = [row.index, row.prompt, row.expected, row.base_output, row.tuned_output]
        cells += [row.base_scores.get(n) for n in names] + [tuned.get(n) for n in names]
        writer.writerow([safe_cell(c) for c in cells])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
