"""Each verdict in words a student reads, with both scores and the p-value."""

from evaluations.wording import rows_for_page, sentence


def entry(name, kind, verdict, base, tuned, p, label="valid JSON"):
    return {
        "name": name,
        "label": label,
        "kind": kind,
        "base": {"mean": base, "low": base, "high": base},
        "tuned": {"mean": tuned, "low": tuned, "high": tuned},
        "test": {"p_value": p, "significant": p < 0.05},
        "verdict": verdict,
    }


def test_each_verdict_is_a_sentence_with_both_scores_and_p():
    assert (
        sentence(entry("valid_json", "pass", "better", 0.03, 0.96, 1e-9))
        == "Tuned is better on valid JSON: 96% vs 3%, p < 0.001."
    )
    assert (
        sentence(entry("rouge_l", "score", "worse", 0.5, 0.25, 0.012, "ROUGE-L F1"))
        == "Tuned is worse on ROUGE-L F1: 0.250 vs 0.500, p = 0.012."
    )
    assert sentence(entry("length", "score", "higher", 10, 42, 0.004, "length")) == (
        "Tuned gives a higher length: 42 vs 10, p = 0.004."
    )
    same = sentence(entry("exact_match", "pass", "same", 0.4, 0.5, 0.38, "exact match"))
    assert same.startswith("No clear difference on exact match: 50% vs 40%, p = 0.380;")
    alone = {**entry("exact_match", "pass", "same", 0.4, 0.4, 1), "tuned": None, "test": None}
    assert sentence(alone) == ""
    [shown] = rows_for_page({"metrics": [entry("valid_json", "pass", "better", 0.03, 0.96, 0)]})
    assert shown["significant"] and (shown["base_text"], shown["tuned_ci"]) == ("3%", "96-96%")
