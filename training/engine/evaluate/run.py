"""One evaluation: held-out examples, base and tuned replies, metrics and paired tests.

Plain Python (no Django): the lab's worker and ``manage.py evaluate`` both call
:func:`evaluate`. The base model's replies can come from a cache (``BaseCache``), keyed
by :func:`base_key` on everything that decides them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from training.engine.data.shapes import Record
from training.engine.data.tokenize import IGNORE_INDEX, prompt_ids, tokenize_record
from training.engine.evaluate import judge, stats
from training.engine.evaluate.examples import EvalError, expected_output
from training.engine.evaluate.metrics import METRICS, PASS, MetricSettings, score
from training.engine.inference.generate import GenerationSettings, generate

# Bump when generation or rendering changes what a cached base reply would be.
CACHE_VERSION = 1


class Cancelled(Exception):
    """The caller asked to stop."""


@dataclass(frozen=True)
class EvalExample:
    index: int
    prompt: str  # what the user asked (the last user turn), for the table
    expected: str
    prompt_ids: list[int]
    record: Record


def build_examples(
    tokenizer: Any, records: list[Record], template: str, custom_template: str = ""
) -> list[EvalExample]:
    if not records:
        raise EvalError("the eval set has no examples")
    examples = []
    for i, record in enumerate(records):
        expected = expected_output(record)
        last_answer = max(j for j, t in enumerate(record.turns) if t.role == "assistant")
        users = [t.content for t in record.turns[:last_answer] if t.role == "user"]
        ids = prompt_ids(tokenizer, record, template, custom_template)
        if not ids:
            raise EvalError("the prompt template puts nothing before the answer")
        examples.append(EvalExample(i, users[-1] if users else "", expected, ids, record))
    return examples


class BaseCache(Protocol):
    def get(self, key: str) -> dict | None: ...
    def put(self, key: str, value: dict) -> None: ...


def model_fingerprint(model_dir: Path | str) -> list:
    """Names, sizes and modification times of a model folder's files."""
    folder = Path(model_dir)
    return sorted(
        [p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in folder.iterdir() if p.is_file()
    )


def base_key(
    model_dir: Path | str,
    examples: list[EvalExample],
    generation: GenerationSettings,
    with_loss: bool,
    max_seq_len: int,
) -> str:
    """Everything that decides the base model's replies (and losses)."""
    payload = {
        "version": CACHE_VERSION,
        "model": str(model_dir),
        "files": model_fingerprint(model_dir),
        "prompts": [e.prompt_ids for e in examples],
        "expected": [e.expected for e in examples] if with_loss else None,
        "generation": {k: v for k, v in asdict(generation).items() if k != "batch_size"},
        "loss": with_loss,
        "max_seq_len": max_seq_len if with_loss else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class EvalHooks:
    """``on_progress(phase, done, total)``; ``should_stop()`` True cancels."""

    on_progress: Callable[[str, int, int], None] | None = None
    should_stop: Callable[[], bool] | None = None

    def progress(self, phase: str, done: int, total: int) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled
        if self.on_progress is not None:
            self.on_progress(phase, done, total)


@dataclass
class EvalReport:
    rows: list[dict]  # per example: index, prompt, expected, base/tuned output and scores
    summary: dict  # per metric: base/tuned estimates and the paired test
    base_cached: bool = False
    extra: dict = field(default_factory=dict)


def replies(
    model: Any,
    tokenizer: Any,
    examples: list[EvalExample],
    generation: GenerationSettings,
    phase: str,
    hooks: EvalHooks,
) -> list[str]:
    total = len(examples)
    hooks.progress(phase, 0, total)

    def on_batch(done: int) -> bool:
        hooks.progress(phase, done, total)
        return True

    out = generate(model, tokenizer, [e.prompt_ids for e in examples], generation, on_batch)
    return [g.text for g in out]


def example_losses(
    model: Any, tokenizer: Any, examples: list[EvalExample], config: dict, batch_size: int = 8
) -> list[float]:
    """Each example's mean cross-entropy per token of its expected answer, as trained."""
    import torch
    import torch.nn.functional as F

    from training.engine.train.batches import collate

    device = next(model.parameters()).device
    tokenized = [
        tokenize_record(
            tokenizer, e.record, config["max_seq_len"], False, config["template"], config["custom"]
        )[0]
        for e in examples
    ]
    losses: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(tokenized), batch_size):
            batch = collate(tokenized[start : start + batch_size], tokenizer.pad_token_id)
            logits = (
                model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    use_cache=False,
                )
                .logits[:, :-1]
                .float()
            )
            targets = batch["labels"][:, 1:].to(device)
            token_loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                targets.reshape(-1),
                reduction="none",
                ignore_index=IGNORE_INDEX,
            ).view(targets.shape)
            counts = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
            losses += (token_loss.sum(dim=1) / counts).tolist()
    return losses


def evaluate(
    model: Any,
    tokenizer: Any,
    examples: list[EvalExample],
    metrics: MetricSettings,
    generation: GenerationSettings,
    *,
    has_adapter: bool,
    adapter_off: Callable[[], Any],
    template: str = "model",
    custom_template: str = "",
    max_seq_len: int = 512,
    model_dir: Path | str | None = None,
    cache: BaseCache | None = None,
    hooks: EvalHooks | None = None,
) -> EvalReport:
    """Replies of the base model (the adapter off, or cached) and of the tuned model,
    scored per example, with intervals and paired tests per metric.

    Without an adapter there is one model: its replies are reported as ``base``.
    """
    hooks = hooks or EvalHooks()
    metrics.check()
    if not examples:
        raise EvalError("the eval set has no examples")
    with_loss = "loss" in metrics.names
    loss_config = {"max_seq_len": max_seq_len, "template": template, "custom": custom_template}
    key = base_key(model_dir, examples, generation, with_loss, max_seq_len) if model_dir else None
    cached = cache.get(key) if cache is not None and key else None
    if cached is not None:
        base_out, base_loss = cached["outputs"], cached.get("losses")
        hooks.progress("base", len(examples), len(examples))
    else:
        with adapter_off():
            base_out = replies(model, tokenizer, examples, generation, "base", hooks)
            base_loss = (
                example_losses(model, tokenizer, examples, loss_config) if with_loss else None
            )
        if cache is not None and key:
            cache.put(key, {"outputs": base_out, "losses": base_loss})
    tuned_out = tuned_loss = None
    if has_adapter:
        tuned_out = replies(model, tokenizer, examples, generation, "tuned", hooks)
        tuned_loss = example_losses(model, tokenizer, examples, loss_config) if with_loss else None
    hooks.progress("scoring", len(examples), len(examples))
    rows = []
    for i, example in enumerate(examples):
        row = {
            "index": example.index,
            "prompt": example.prompt,
            "expected": example.expected,
            "base_output": base_out[i],
            "base_scores": score(base_out[i], example.expected, metrics),
            "tuned_output": tuned_out[i] if tuned_out is not None else None,
            "tuned_scores": (
                score(tuned_out[i], example.expected, metrics) if tuned_out is not None else None
            ),
        }
        if with_loss:
            row["base_scores"]["loss"] = base_loss[i]
            if tuned_loss is not None:
                row["tuned_scores"]["loss"] = tuned_loss[i]
        rows.append(row)
    if "judge" in metrics.names:
        hooks.progress("judging", len(examples), len(examples))
        add_verdicts(rows, metrics.judge)
    return EvalReport(rows, summarise(rows, metrics.names), base_cached=cached is not None)


def add_verdicts(rows: list[dict], config: judge.JudgeConfig) -> None:
    """The judge's verdict on every base and tuned reply, as the ``judge`` score."""
    for side in ("base", "tuned"):
        asked = [r for r in rows if r[f"{side}_output"] is not None]
        verdicts = judge.judge_all(
            config, [(r["prompt"], r["expected"], r[f"{side}_output"]) for r in asked]
        )
        for row, verdict in zip(asked, verdicts, strict=True):
            row[f"{side}_scores"]["judge"] = verdict


def summarise(rows: list[dict], names: list[str]) -> dict:
    """Per metric: base and tuned means with 95% intervals, and the paired test."""
    out: dict[str, Any] = {"examples": len(rows), "metrics": []}
    for name in names:
        metric = METRICS[name]
        base = [float(r["base_scores"][name]) for r in rows]
        entry: dict[str, Any] = {
            "name": name,
            "label": metric.label,
            "kind": metric.kind,
            "higher_is_better": metric.higher_is_better,
            "base": stats.bootstrap_ci(base).to_dict(),
            "tuned": None,
            "test": None,
        }
        if rows and rows[0]["tuned_scores"] is not None:
            tuned = [float(r["tuned_scores"][name]) for r in rows]
            entry["tuned"] = stats.bootstrap_ci(tuned).to_dict()
            if metric.kind == PASS:
                test = stats.mcnemar([bool(v) for v in base], [bool(v) for v in tuned])
            else:
                test = stats.paired_bootstrap(base, tuned)
            entry["test"] = test.to_dict()
            entry["verdict"] = verdict(test, metric.higher_is_better)
        if name == "loss":
            entry["base"]["perplexity"] = math.exp(entry["base"]["mean"])
            if entry["tuned"]:
                entry["tuned"]["perplexity"] = math.exp(entry["tuned"]["mean"])
        out["metrics"].append(entry)
    return out


def verdict(test: stats.PairedTest, higher_is_better: bool | None) -> str:
    """ "better", "worse", "higher", "lower" (no better direction) or "same" (not significant)."""
    if not test.significant:
        return "same"
    up = test.difference > 0
    if higher_is_better is None:
        return "higher" if up else "lower"
    return "better" if up == higher_is_better else "worse"


def row_flags(row: dict, names: list[str]) -> tuple[bool, bool]:
    """(changed: the tuned reply differs, worse: tuned fails a pass/fail metric the base
    passes, or scores lower on a higher-is-better score)."""
    if row["tuned_scores"] is None:
        return False, False
    changed = row["tuned_output"] != row["base_output"]
    worse = any(_worse(METRICS[n], row["base_scores"][n], row["tuned_scores"][n]) for n in names)
    return changed, worse


def _worse(metric: Any, base: float, tuned: float) -> bool:
    if metric.kind == PASS:
        return bool(base) and not tuned
    if metric.higher_is_better is None:
        return False
    return tuned < base if metric.higher_is_better else tuned > base
