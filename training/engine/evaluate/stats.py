"""Is a difference real? Bootstrap confidence intervals and paired tests over examples.

Pass/fail metrics compare with McNemar's exact test: only the examples where the two
models disagree count, and under "no difference" each disagreement is a coin flip.
Continuous metrics compare with a paired bootstrap of the mean difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """The mean and its percentile-bootstrap interval (examples resampled with replacement)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(data.mean()), float(low), float(high))


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of ``k`` or fewer heads in ``n`` fair flips (or as many tails)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison: tuned minus base, and how likely a gap this size is by chance."""

    test: str  # "mcnemar" or "paired_bootstrap"
    difference: float
    low: float
    high: float
    p_value: float
    base_only: int | None = None  # McNemar: examples only the base passes
    tuned_only: int | None = None  # ... only the tuned model passes

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def mcnemar(base: Sequence[bool], tuned: Sequence[bool], seed: int = 0) -> PairedTest:
    """McNemar's exact test (binomial on the discordant pairs)."""
    if len(base) != len(tuned):
        raise ValueError("paired results must have the same length")
    base_only = sum(1 for b, t in zip(base, tuned, strict=True) if b and not t)
    tuned_only = sum(1 for b, t in zip(base, tuned, strict=True) if t and not b)
    diff = _difference_ci([float(t) - float(b) for b, t in zip(base, tuned, strict=True)], seed)
    p = binomial_two_sided(min(base_only, tuned_only), base_only + tuned_only)
    return PairedTest("mcnemar", diff.mean, diff.low, diff.high, p, base_only, tuned_only)


def paired_bootstrap(
    base: Sequence[float], tuned: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> PairedTest:
    """Mean of tuned - base with its interval, and a two-sided bootstrap p-value: how
    often a resampled mean difference lands on the other side of zero."""
    if len(base) != len(tuned):
        raise ValueError("paired results must have the same length")
    d = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    if d.size == 0:
        raise ValueError("no values")
    if np.all(d == 0):
        return PairedTest("paired_bootstrap", 0.0, 0.0, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    below = int((means <= 0).sum())
    above = int((means >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return PairedTest("paired_bootstrap", float(d.mean()), float(low), float(high), p)


def _difference_ci(diffs: list[float], seed: int) -> Estimate:
    return bootstrap_ci(diffs, seed=seed) if diffs else Estimate(0.0, 0.0, 0.0)
