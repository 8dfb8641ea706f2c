"""Dataset statistics against a max sequence length, and a seeded train/validation split.

Independent of the file format: the caller passes the rows (dicts of fields: text,
or lists such as chat turns) with their tokenized examples, as the reader and the
template for that format make them. Examples must be untruncated (see
:func:`untruncated_examples`): truncation is what the statistics measure.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from training.engine.data import IGNORE_INDEX, tokenize_example

Example = dict[str, list[int]]
T = TypeVar("T")
MAX_BUCKETS = 24
PROGRESS_EVERY = 1000


def untruncated_examples(
    tokenizer: Any, rows: Iterable[dict[str, str]], train_on_prompt: bool = False
) -> Iterator[tuple[dict[str, str], Example]]:
    """(row, example) pairs tokenized exactly as training does, but never truncated."""
    for row in rows:
        yield row, tokenize_example(tokenizer, row, sys.maxsize, train_on_prompt)


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


def validation_count(n: int, val_ratio: float) -> int:
    """How many of ``n`` rows :func:`split_indices` holds out, without drawing them."""
    if not 0 <= val_ratio < 1:
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    n_val = round(n * val_ratio)
    if val_ratio > 0:
        n_val = max(1, n_val)
    return min(n_val, max(0, n - 1))


def split_indices(n: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Ascending (train, validation) row indices; the same arguments give the same split.

    ``round(n * val_ratio)`` rows go to validation, at least one when the ratio is
    positive, and never all of them: training keeps at least one row.
    """
    n_val = validation_count(n, val_ratio)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val = sorted(order[:n_val])
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val


def split_rows(rows: Sequence[T], val_ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """Train and validation rows of ``rows`` (file order kept), as :func:`split_indices`."""
    train, val = split_indices(len(rows), val_ratio, seed)
    return [rows[i] for i in train], [rows[i] for i in val]
