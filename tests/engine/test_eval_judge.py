"""The LLM-as-judge metric against a fake OpenAI-compatible endpoint (tests/fakejudge.py)."""

import pytest

from tests.fakejudge import KEY, FakeJudge
from training.engine.evaluate import judge
from training.engine.evaluate.metrics import MetricError, MetricSettings
from training.engine.evaluate.run import add_verdicts, summarise


@pytest.fixture
def fake_judge():
    with FakeJudge() as server:
        yield server


def test_the_judge_is_sent_the_shown_prompt_and_its_yes_or_no_is_the_score(fake_judge):
    config = judge.JudgeConfig(fake_judge.url, "judge-model", KEY)
    assert judge.ask(config, "Capital of France?", "Paris", "It is Paris.") is True
    assert judge.ask(config, "Capital of France?", "Paris", "Lyon") is False
    sent = fake_judge.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0
    assert sent["messages"][0]["content"] == judge.judge_prompt(
        "Capital of France?", "Paris", "It is Paris."
    )
    assert "YES or NO" in judge.JUDGE_PROMPT


def test_verdicts_are_parsed_strictly():
    assert judge.parse_verdict(" yes.") is True and judge.parse_verdict("**NO**") is False
    with pytest.raises(judge.JudgeError, match="not YES or NO"):
        judge.parse_verdict("Maybe, partly")


def test_a_refused_key_an_unreachable_judge_and_a_vague_verdict_are_clear_errors(fake_judge):
    with pytest.raises(judge.JudgeError, match="HTTP 401 \\(the API key was refused\\)"):
        judge.ask(judge.JudgeConfig(fake_judge.url, "m", "wrong"), "q", "a", "a")
    with pytest.raises(judge.JudgeError, match="could not be reached"):
        judge.ask(judge.JudgeConfig("http://127.0.0.1:9/v1", "m", timeout_s=2), "q", "a", "a")
    fake_judge.verdict = "Maybe"
    with pytest.raises(judge.JudgeError, match="'Maybe', not YES or NO"):
        judge.ask(judge.JudgeConfig(fake_judge.url, "m", KEY), "q", "a", "a")


def test_the_judge_metric_needs_a_configured_judge():
    with pytest.raises(MetricError, match="SLMLAB_JUDGE_URL"):
        MetricSettings(names=["judge"]).check()


def test_base_and_tuned_replies_are_judged_and_compared_with_mcnemar(fake_judge):
    config = judge.JudgeConfig(fake_judge.url, "m", KEY)
    rows = [
        {
            "prompt": f"q{i}",
            "expected": "Paris",
            "base_output": "Lyon",
            "tuned_output": "Paris",
            "base_scores": {},
            "tuned_scores": {},
        }
        for i in range(12)
    ]
    add_verdicts(rows, config)
    assert all(r["base_scores"]["judge"] is False for r in rows)
    assert all(r["tuned_scores"]["judge"] is True for r in rows)
    [entry] = summarise(rows, ["judge"])["metrics"]
    assert entry["base"]["mean"] == 0 and entry["tuned"]["mean"] == 1
    assert entry["test"]["test"] == "mcnemar" and entry["verdict"] == "better"
    assert len(fake_judge.requests) == 24
