"""Per metric, base and tuned with intervals and the right paired test; per example, the
"changed" and "tuned worse" flags the table filters on."""

import math

import pytest

from training.engine.evaluate.run import row_flags, summarise


def row(base_output, tuned_output, base, tuned):
    return {
        "base_output": base_output,
        "tuned_output": tuned_output,
        "base_scores": base,
        "tuned_scores": tuned,
    }


def test_pass_fail_metrics_get_mcnemar_and_scores_a_paired_bootstrap():
    rows = [
        row(
            "prose",
            '{"a": 1}',
            {"valid_json": False, "rouge_l": 0.2, "loss": 2.0},
            {"valid_json": True, "rouge_l": 0.9, "loss": 0.5},
        )
        for _ in range(12)
    ]
    summary = summarise(rows, ["valid_json", "rouge_l", "loss"])
    valid, rouge, loss = summary["metrics"]
    assert summary["examples"] == 12
    assert valid["test"]["test"] == "mcnemar" and valid["test"]["tuned_only"] == 12
    assert valid["test"]["p_value"] == pytest.approx(2 / 2**12)
    assert (valid["base"]["mean"], valid["tuned"]["mean"], valid["verdict"]) == (0, 1, "better")
    assert rouge["test"]["test"] == "paired_bootstrap" and rouge["verdict"] == "better"
    assert rouge["test"]["difference"] == pytest.approx(0.7)
    assert loss["test"]["test"] == "paired_bootstrap" and loss["verdict"] == "better"  # lower
    assert loss["base"]["perplexity"] == pytest.approx(math.exp(2.0))
    assert loss["tuned"]["perplexity"] == pytest.approx(math.exp(0.5))


def test_a_model_alone_has_intervals_and_no_paired_test():
    rows = [row("4", None, {"exact_match": i % 2 == 0}, None) for i in range(10)]
    [entry] = summarise(rows, ["exact_match"])["metrics"]
    assert entry["base"]["mean"] == 0.5 and entry["base"]["low"] < 0.5 < entry["base"]["high"]
    assert entry["tuned"] is None and entry["test"] is None


def test_a_row_is_worse_when_tuned_loses_a_pass_or_a_higher_is_better_score():
    names = ["exact_match", "rouge_l", "length", "loss"]
    same = {"exact_match": True, "rouge_l": 0.5, "length": 3.0, "loss": 1.0}
    assert row_flags(row("a", "a", same, dict(same)), names) == (False, False)
    assert row_flags(row("a", "b", same, {**same, "length": 9.0}), names) == (True, False)
    assert row_flags(row("a", "b", same, {**same, "exact_match": False}), names) == (True, True)
    assert row_flags(row("a", "b", same, {**same, "rouge_l": 0.4}), names) == (True, True)
    assert row_flags(row("a", "b", same, {**same, "loss": 1.5}), names) == (True, True)
    assert row_flags(row("a", None, same, None), names) == (False, False)
