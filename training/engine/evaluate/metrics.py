"""Task metrics: each compares one model output with the expected output of its example.

Pass/fail metrics answer True or False (their paired test is McNemar's); score metrics
answer a number (paired bootstrap). ROUGE-L comes from Google's ``rouge-score`` with a
tokenizer that keeps every script's letters: its default one drops anything outside
a-z and 0-9, so Korean or Chinese text would always score 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rouge_score import rouge_scorer

from training.engine.evaluate.judge import JudgeConfig

PASS, SCORE = "pass", "score"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A CJK ideograph or kana on its own (those scripts write no spaces), else a run of
# letters and digits.
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


class MetricError(ValueError):
    """Metric settings that cannot work (an unknown name, a regex that does not compile)."""


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def exact_match(output: str, expected: str, ignore_case: bool = False) -> bool:
    a, b = normalise_space(output), normalise_space(expected)
    return a.casefold() == b.casefold() if ignore_case else a == b


def contains(output: str, expected: str, ignore_case: bool = False) -> bool:
    a, b = normalise_space(output), normalise_space(expected)
    return b.casefold() in a.casefold() if ignore_case else b in a


class _Tokenizer:
    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text.casefold())


_ROUGE = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())


def rouge_l(output: str, expected: str) -> float:
    """ROUGE-L F1 (longest common subsequence of words) of ``output`` against ``expected``."""
    return float(_ROUGE.score(expected, output)["rougeL"].fmeasure)


def _parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text.strip())
    except (ValueError, RecursionError):
        return False, None


def valid_json(output: str) -> bool:
    """The whole output (surrounding whitespace aside) is one JSON value."""
    return _parse_json(output)[0]


def json_equal(output: str, expected: str) -> bool:
    """Both parse as JSON and the parsed values are equal (key order and spacing aside)."""
    ok_out, value_out = _parse_json(output)
    ok_exp, value_exp = _parse_json(expected)
    return ok_out and ok_exp and value_out == value_exp


def compile_regex(pattern: str) -> re.Pattern[str]:
    if not pattern:
        raise MetricError("the regex metric needs a pattern")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise MetricError(f"the regex {pattern!r} does not compile: {exc}") from exc


def regex_match(output: str, pattern: str | re.Pattern[str]) -> bool:
    """The pattern is found in the output (anchor it with ^ and $ to match the whole)."""
    compiled = compile_regex(pattern) if isinstance(pattern, str) else pattern
    return compiled.search(output) is not None


def output_length(output: str) -> float:
    """Characters of the output, surrounding whitespace aside."""
    return float(len(output.strip()))


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: str  # PASS or SCORE
    higher_is_better: bool | None  # None: neither (output length)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("exact_match", "exact match", PASS, True),
        Metric("contains", "contains the expected output", PASS, True),
        Metric("rouge_l", "ROUGE-L F1", SCORE, True),
        Metric("valid_json", "valid JSON", PASS, True),
        Metric("json_equal", "JSON equal", PASS, True),
        Metric("regex", "regex match", PASS, True),
        Metric("length", "output length (characters)", SCORE, None),
        Metric("loss", "validation loss on the expected output", SCORE, False),
        # Optional: only where the operator configured a judge endpoint (judge.py).
        Metric("judge", "LLM judge: gives the expected answer", PASS, True),
    )
}
# Computed apart from the text metrics: loss by the model, judge by the judge endpoint.
APART = ("loss", "judge")
DEFAULT_METRICS = ["exact_match", "contains", "rouge_l", "valid_json", "json_equal", "length"]


@dataclass
class MetricSettings:
    """Which metrics to compute, and their options."""

    names: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    ignore_case: bool = False
    regex: str = ""
    judge: JudgeConfig | None = None

    def check(self) -> None:
        unknown = [n for n in self.names if n not in METRICS]
        if unknown:
            known = ", ".join(METRICS)
            raise MetricError(f"unknown metric {unknown[0]!r}: expected one of {known}")
        if not self.names:
            raise MetricError("choose at least one metric")
        if "regex" in self.names:
            compile_regex(self.regex)
        if "judge" in self.names and self.judge is None:
            raise MetricError(
                "no LLM judge is configured: the operator sets SLMLAB_JUDGE_URL and "
                "SLMLAB_JUDGE_MODEL"
            )

    def scorers(self) -> dict[str, Callable[[str, str], float | bool]]:
        """name -> f(output, expected), for the text metrics (not those in APART)."""
        self.check()
        case = self.ignore_case
        table: dict[str, Callable[[str, str], float | bool]] = {
            "exact_match": lambda o, e: exact_match(o, e, case),
            "contains": lambda o, e: contains(o, e, case),
            "rouge_l": rouge_l,
            "valid_json": lambda o, e: valid_json(o),
            "json_equal": json_equal,
            "length": lambda o, e: output_length(o),
        }
        if "regex" in self.names:
            compiled = compile_regex(self.regex)
            table["regex"] = lambda o, e: regex_match(o, compiled)
        return {n: table[n] for n in self.names if n in table}


def score(output: str, expected: str, settings: MetricSettings) -> dict[str, float | bool]:
    return {name: f(output, expected) for name, f in settings.scorers().items()}
