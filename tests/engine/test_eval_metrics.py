"""Task metrics against values worked out by hand."""

import pytest

from training.engine.evaluate.metrics import (
    MetricError,
    MetricSettings,
    contains,
    exact_match,
    json_equal,
    output_length,
    regex_match,
    rouge_l,
    score,
    valid_json,
)


def test_exact_match_normalises_whitespace_and_optionally_case():
    assert exact_match("  Paris \n", "Paris")
    assert exact_match("New   York\tCity", "New York City")
    assert not exact_match("paris", "Paris")
    assert exact_match("paris", "Paris", ignore_case=True)
    assert not exact_match("Paris, France", "Paris")


def test_contains_finds_the_expected_text_inside_the_output():
    assert contains('The answer is {"answer": "4"}.', '{"answer": "4"}')
    assert not contains("The answer is four", "4")
    assert contains("IT IS PARIS", "paris", ignore_case=True)


def test_rouge_l_f1_is_the_longest_common_subsequence_share():
    # LCS "the cat on the mat": 5 of 6 words on both sides -> P = R = F = 5/6
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("x y", "a b") == 0.0
    # P = 2/2, R = 2/4 -> F = 2PR/(P+R) = 2/3
    assert rouge_l("a b", "a b c d") == pytest.approx(2 / 3)


def test_rouge_l_scores_text_outside_ascii():
    assert rouge_l("서울은 수도 입니다", "서울은 수도 입니다") == 1.0
    assert rouge_l("東京", "東京都") == pytest.approx(0.8)  # 2 of 2, 2 of 3 characters


def test_valid_json_and_json_equal_compare_parsed_values():
    assert valid_json(' {"answer": "4"}\n')
    assert not valid_json('Sure! {"answer": "4"}')
    assert not valid_json("")
    assert json_equal('{"b": 1, "a": [1, 2]}', '{"a":[1,2],"b":1}')
    assert not json_equal('{"a": 1}', '{"a": "1"}')
    assert not json_equal("not json", "not json")


def test_regex_searches_and_a_bad_pattern_is_a_clear_error():
    assert regex_match('{"answer": "141"}', r'"\d+"')
    assert not regex_match("no digits", r"^\d+$")
    with pytest.raises(MetricError, match="does not compile"):
        regex_match("x", "(unclosed")
    with pytest.raises(MetricError, match="does not compile"):
        MetricSettings(names=["regex"], regex="[a-").check()


def test_output_length_counts_characters():
    assert output_length("  hello \n") == 5.0


def test_score_computes_the_chosen_metrics_only():
    settings = MetricSettings(names=["exact_match", "valid_json", "regex"], regex="^{")
    assert score('{"answer": "4"}', '{"answer": "4"}', settings) == {
        "exact_match": True,
        "valid_json": True,
        "regex": True,
    }
    with pytest.raises(MetricError, match="unknown metric"):
        MetricSettings(names=["bleu"]).check()
