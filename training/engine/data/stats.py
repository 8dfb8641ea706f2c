"""Dataset statistics against a max sequence length.

:func:`dataset_pairs` reads a stored file and renders and tokenizes every row exactly as
training does, but never truncates: truncation is what :func:`dataset_stats` measures.
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from training.engine.data.records import DataSpec, iter_records
from training.engine.data.tokenize import IGNORE_INDEX, Example, encode_record

MAX_BUCKETS = 24
PROGRESS_EVERY = 1000


def dataset_pairs(
    path: Path | str, spec: DataSpec, tokenizer: Any
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(row fields, untruncated example) for each row of a validated file, read and
    rendered with ``spec``'s format, shape, mapping and template."""
    for record, _problems in iter_records(path, spec):
        if record is None:
            continue
        ids, labels = encode_record(tokenizer, record, spec.template, spec.custom_template)
        if record.fields:
            row: dict[str, Any] = dict(record.fields)
        else:  # chats and plain text: their parts are the fields
            row = {k: v for k, v in record.to_dict().items() if k != "fields"}
        if not row.get("system"):
            row.pop("system", None)  # optional everywhere: a missing one is no data problem
        # Plain text is cut into windows by training, not truncated (tokenize_record).
        yield row, {"input_ids": ids, "labels": labels, "windowed": record.text is not None}


def dataset_stats(
    pairs: Iterable[tuple[Mapping[str, Any], Example]],
    max_len: int,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Statistics of a dataset as training at ``max_len`` tokens would see it.

    Streams: per row it keeps one token length and one 8-byte hash, never the rows.
    ``on_progress(rows_done)`` is called every 1000 rows. The result is plain JSON:

    - ``rows``; ``lengths``: min, median, p95 (nearest rank), max, mean of the
      untruncated token lengths; ``histogram``: bucket ``width`` and ``counts``
      (bucket i holds lengths in [i*width, (i+1)*width)), spanning ``max_len`` too.
    - ``truncated``: rows longer than ``max_len``; ``dropped``: rows left with no
      trained token once truncated (training skips them); ``tokens`` and
      ``trained_tokens``: after truncation (a row's first token is never predicted).
      An example marked ``windowed`` (plain text) is not truncated but cut into
      consecutive windows of ``max_len``, as training does: it counts in ``windowed``
      when it needs more than one, and all of its tokens are kept.
    - ``empty_fields``: per field, rows where it is blank text, an empty list or null.
    - ``duplicates``: rows that exactly repeat an earlier row.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    lengths = array("q")
    hashes = array("q")
    empty: dict[str, int] = {}
    truncated = windowed = dropped = tokens = trained = 0
    for n, (row, example) in enumerate(pairs, start=1):
        length = len(example["input_ids"])
        lengths.append(length)
        hashes.append(_row_hash(row))
        for field, value in row.items():
            empty[field] = empty.get(field, 0) + _is_empty(value)
        labels = example["labels"]
        if example.get("windowed"):
            windows = [labels[i : i + max_len] for i in range(0, length, max_len)]
            windowed += len(windows) > 1
        else:
            windows = [labels[:max_len]]
            truncated += length > max_len
        row_trained = sum(sum(1 for x in w[1:] if x != IGNORE_INDEX) for w in windows)
        dropped += row_trained == 0
        tokens += sum(len(w) for w in windows)
        trained += row_trained
        if on_progress is not None and n % PROGRESS_EVERY == 0:
            on_progress(n)
    rows = len(lengths)
    if not rows:
        raise ValueError("no rows: statistics need at least one row")
    ordered = np.sort(np.frombuffer(lengths, dtype=np.int64))
    width = bucket_width(max(max_len, int(ordered[-1])))
    counts = np.bincount(ordered // width).tolist()
    return {
        "rows": rows,
        "max_len": max_len,
        "lengths": {
            "min": int(ordered[0]),
            "median": _nearest_rank(ordered, 50),
            "p95": _nearest_rank(ordered, 95),
            "max": int(ordered[-1]),
            "mean": round(float(ordered.mean()), 2),
        },
        "histogram": {"width": width, "counts": counts},
        "truncated": truncated,
        "truncated_share": truncated / rows,
        "windowed": windowed,
        "dropped": dropped,
        "tokens": tokens,
        "trained_tokens": trained,
        "empty_fields": empty,
        "duplicates": rows - len(np.unique(np.frombuffer(hashes, dtype=np.int64))),
    }


def bucket_width(upper: int, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest 1, 2 or 5 times 10^k width that covers [0, upper] in ``max_buckets``."""
    target = max(1, math.ceil((upper + 1) / max_buckets))
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= target:
                return step * scale
        scale *= 10


def _is_empty(value: Any) -> bool:
    """Blank text, an empty list (e.g. no chat turns), or a missing value."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return value is None


def _nearest_rank(ordered: Any, percent: int) -> int:
    return int(ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)])


def _row_hash(row: Mapping[str, Any]) -> int:
    text = json.dumps(row, sort_keys=True, ensure_ascii=False)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
