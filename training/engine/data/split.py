"""A seeded train/validation split: the same rows every time, on the page and in a run."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


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
