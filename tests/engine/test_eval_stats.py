"""Confidence intervals and paired tests against known values."""

import pytest

from training.engine.evaluate.stats import (
    binomial_two_sided,
    bootstrap_ci,
    mcnemar,
    paired_bootstrap,
)


def test_bootstrap_ci_of_constant_values_is_a_point():
    estimate = bootstrap_ci([0.7] * 20)
    assert (estimate.mean, estimate.low, estimate.high) == pytest.approx((0.7, 0.7, 0.7))


def test_bootstrap_ci_of_a_half_pass_rate_is_about_the_normal_interval():
    estimate = bootstrap_ci([1.0, 0.0] * 50, seed=3)
    # normal approximation: 0.5 +- 1.96 * sqrt(0.25 / 100) = 0.402 .. 0.598
    assert estimate.mean == 0.5
    assert estimate.low == pytest.approx(0.40, abs=0.025)
    assert estimate.high == pytest.approx(0.60, abs=0.025)


def test_bootstrap_is_deterministic_for_a_seed():
    values = [0.1, 0.5, 0.9, 0.3]
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)


def test_exact_binomial_two_sided_p():
    assert binomial_two_sided(1, 10) == pytest.approx(22 / 1024)
    assert binomial_two_sided(5, 10) == 1.0
    assert binomial_two_sided(0, 0) == 1.0
    assert binomial_two_sided(0, 23) == pytest.approx(2 / 2**23)


def test_mcnemar_counts_the_disagreements_only():
    base = [True] * 5 + [False] * 9 + [True] + [False] * 5
    tuned = [True] * 5 + [True] * 9 + [False] + [False] * 5
    result = mcnemar(base, tuned)
    assert (result.base_only, result.tuned_only) == (1, 9)
    assert result.p_value == pytest.approx(22 / 1024)
    assert result.significant
    assert result.difference == pytest.approx(8 / 20)


def test_mcnemar_with_no_disagreement_finds_nothing():
    result = mcnemar([True, False, True], [True, False, True])
    assert result.p_value == 1.0 and not result.significant


def test_paired_bootstrap_finds_a_consistent_gain_and_not_noise():
    base = [0.1 * (i % 5) for i in range(40)]
    better = paired_bootstrap(base, [b + 0.3 for b in base])
    assert better.difference == pytest.approx(0.3)
    assert better.p_value < 0.001
    same = paired_bootstrap(base, list(base))
    assert same.p_value == 1.0
    noise = paired_bootstrap(base, [b + (0.05 if i % 2 else -0.05) for i, b in enumerate(base)])
    assert noise.p_value > 0.5 and noise.low < 0 < noise.high
