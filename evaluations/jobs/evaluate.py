"""Evaluations on a worker: the run's validation rows, base and tuned replies, scores."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from django.db.models import F

from evaluations import events
from evaluations.judging import judge_config
from evaluations.models import BaseOutputs, EvalRow, Evaluation
from slmlab.jobs import JobStatus
from training import retention
from training.engine.data.pipeline import records_for_run
from training.engine.data.records import DataSpec, read_dataset
from training.engine.data.split import split_rows
from training.engine.evaluate import run as engine_eval
from training.engine.evaluate.metrics import DEFAULT_METRICS, MetricSettings
from training.engine.evaluate.run import Cancelled, EvalHooks, build_examples, row_flags
from training.engine.inference.chat import ChatModel
from training.engine.inference.generate import GenerationSettings
from training.run_config import engine_config

logger = logging.getLogger(__name__)
PUSH_INTERVAL_S = 1.0
# Tokens of an example a store model's loss reads (no run says; manage.py evaluate's default).
STORE_MAX_SEQ_LEN = 512


class DatabaseCache:
    """Base replies shared by one owner's evaluations with the same inputs (BaseOutputs)."""

    def __init__(self, owner_id: int) -> None:
        self.rows = BaseOutputs.objects.filter(owner_id=owner_id)
        self.owner_id = owner_id

    def get(self, key: str) -> dict | None:
        found = self.rows.filter(key=key).first()
        if found is None:
            return None
        BaseOutputs.objects.filter(pk=found.pk).update(hits=F("hits") + 1)
        return {"outputs": found.outputs, "losses": found.losses}

    def put(self, key: str, value: dict) -> None:
        BaseOutputs.objects.update_or_create(
            owner_id=self.owner_id,
            key=key,
            defaults={"outputs": value["outputs"], "losses": value["losses"]},
        )


def metric_settings(evaluation: Evaluation) -> MetricSettings:
    names = list(evaluation.metrics or DEFAULT_METRICS)
    return MetricSettings(
        names=names,
        ignore_case=evaluation.ignore_case,
        regex=evaluation.regex,
        judge=judge_config() if "judge" in names else None,
    )


def evaluate(evaluation_id: int) -> None:
    """Claim one evaluation and run it to the end; a second delivery does nothing."""
    evaluation = (
        Evaluation.objects.select_related(
            "run__base_model", "run__base_run", "run__dataset", "base_model", "dataset"
        )
        .filter(pk=evaluation_id)
        .first()
    )
    if evaluation is None or not evaluation.claim():
        return
    _publish(evaluation)
    try:
        _evaluate(evaluation)
    except Cancelled:
        logger.info("evaluation %s was cancelled or deleted; stopped", evaluation_id)
    except Exception as exc:
        if Evaluation.objects.filter(pk=evaluation_id, status=JobStatus.RUNNING).exists():
            logger.exception("evaluation %s failed", evaluation_id)
            why = f"{type(exc).__name__}: {exc}"
            evaluation.fail(evaluation.run.public_text(why) if evaluation.run_id else why)
    # A dataset whose file goes after training waited for this evaluation's rows.
    dataset = evaluation.run.dataset if evaluation.of_run else evaluation.dataset
    if dataset is not None:
        retention.release_dataset(dataset)
    _publish(evaluation)


def _publish(evaluation: Evaluation) -> None:
    events.publish(evaluation.pk)
    if evaluation.run_id:
        events.publish_run(evaluation.run_id)


@dataclass(frozen=True)
class Subject:
    """What one evaluation scores: the model (and adapter), its eval rows, how they render."""

    model_dir: str
    adapter_dir: Path | None
    records: list
    template: str
    custom_template: str
    max_seq_len: int


def run_subject(evaluation: Evaluation) -> Subject:
    run = evaluation.run
    config = engine_config(run)
    if evaluation.eval_file:
        rows = read_dataset(evaluation.eval_file.path, DataSpec(**evaluation.eval_spec))
    else:
        rows = records_for_run(config)[1]
    return Subject(
        run.base_path,
        run.adapter_dir,
        rows,
        config.prompt_template,
        config.custom_template,
        config.max_seq_len,
    )


def store_subject(evaluation: Evaluation) -> Subject:
    """A store model (or a model pretrained in the lab) alone: the uploaded file, or the
    dataset's validation rows as a run on it would hold them out."""
    dataset = evaluation.dataset
    if evaluation.eval_file:
        spec = DataSpec(**evaluation.eval_spec)
        rows = read_dataset(evaluation.eval_file.path, spec)
    else:
        spec = dataset.spec()
        if dataset.validation_file:
            rows = read_dataset(dataset.validation_file.path, spec)
        else:
            all_rows = read_dataset(dataset.file.path, spec)
            rows = split_rows(all_rows, dataset.val_percent / 100, dataset.split_seed)[1]
    if evaluation.of_pretrained:  # the model a pretraining run saved, at its design's context
        run = evaluation.run
        model_dir = str(run.model_dir)
        max_len = int(run.config.get("design", {}).get("context_length") or STORE_MAX_SEQ_LEN)
    else:
        model_dir = evaluation.base_model.path
        max_len = evaluation.base_model.context_length or STORE_MAX_SEQ_LEN
    return Subject(
        model_dir,
        None,
        rows,
        spec.template,
        spec.custom_template,
        min(max_len, STORE_MAX_SEQ_LEN),
    )


def _evaluate(evaluation: Evaluation) -> None:
    subject = run_subject(evaluation) if evaluation.of_run else store_subject(evaluation)
    rows = subject.records
    records = rows[: evaluation.limit] if evaluation.limit else rows
    chat = ChatModel(
        Path(subject.model_dir),
        subject.adapter_dir,
        template=subject.template,
        custom_template=subject.custom_template,
    )
    examples = build_examples(chat.tokenizer, records, subject.template, subject.custom_template)
    metrics = metric_settings(evaluation)
    last_push = [0.0]

    def on_progress(phase: str, done: int, total: int) -> None:
        if not evaluation.report(phase=phase, examples_done=done, examples_total=total):
            raise Cancelled
        now = time.monotonic()
        if now - last_push[0] >= PUSH_INTERVAL_S or done == total:
            last_push[0] = now
            events.publish(evaluation.pk)

    report = engine_eval.evaluate(
        chat.model,
        chat.tokenizer,
        examples,
        metrics,
        GenerationSettings(
            max_new_tokens=evaluation.max_new_tokens,
            temperature=evaluation.temperature,
            top_p=evaluation.top_p,
            seed=evaluation.seed,
        ),
        has_adapter=evaluation.of_run,
        adapter_off=chat.model.disable_adapter if chat.has_adapter else contextlib.nullcontext,
        template=subject.template,
        custom_template=subject.custom_template,
        max_seq_len=subject.max_seq_len,
        model_dir=subject.model_dir,
        cache=DatabaseCache(evaluation.owner_id),
        hooks=EvalHooks(on_progress=on_progress),
    )
    rows = []
    for row in report.rows:
        changed, worse = row_flags(row, metrics.names)
        rows.append(
            EvalRow(
                evaluation=evaluation,
                index=row["index"],
                prompt=row["prompt"],
                expected=row["expected"],
                base_output=row["base_output"],
                tuned_output=row["tuned_output"] or "",
                base_scores=row["base_scores"],
                tuned_scores=row["tuned_scores"],
                changed=changed,
                worse=worse,
            )
        )
    EvalRow.objects.filter(evaluation=evaluation).delete()
    EvalRow.objects.bulk_create(rows)
    evaluation.finish(summary=report.summary, base_cached=report.base_cached)
