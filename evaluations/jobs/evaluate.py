"""Evaluations on a worker: the run's validation rows, base and tuned replies, scores."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from evaluations import events
from evaluations.models import BaseOutputs, EvalRow, Evaluation
from slmlab.jobs import JobStatus
from training import retention
from training.engine.data.pipeline import records_for_run
from training.engine.data.records import DataSpec, read_dataset
from training.engine.evaluate import run as engine_eval
from training.engine.evaluate.metrics import DEFAULT_METRICS, MetricSettings
from training.engine.evaluate.run import Cancelled, EvalHooks, build_examples, row_flags
from training.engine.inference.chat import ChatModel
from training.engine.inference.generate import GenerationSettings
from training.run_config import engine_config

logger = logging.getLogger(__name__)
PUSH_INTERVAL_S = 1.0


class DatabaseCache:
    """Base replies shared by every evaluation with the same inputs (BaseOutputs rows)."""

    def get(self, key: str) -> dict | None:
        found = BaseOutputs.objects.filter(key=key).first()
        if found is None:
            return None
        BaseOutputs.objects.filter(pk=found.pk).update(hits=found.hits + 1)
        return {"outputs": found.outputs, "losses": found.losses}

    def put(self, key: str, value: dict) -> None:
        BaseOutputs.objects.update_or_create(
            key=key, defaults={"outputs": value["outputs"], "losses": value["losses"]}
        )


def metric_settings(evaluation: Evaluation) -> MetricSettings:
    return MetricSettings(
        names=list(evaluation.metrics or DEFAULT_METRICS),
        ignore_case=evaluation.ignore_case,
        regex=evaluation.regex,
    )


def evaluate(evaluation_id: int) -> None:
    """Claim one evaluation and run it to the end; a second delivery does nothing."""
    evaluation = (
        Evaluation.objects.select_related("run__base_model", "run__base_run", "run__dataset")
        .filter(pk=evaluation_id)
        .first()
    )
    if evaluation is None or not evaluation.claim():
        return
    events.publish(evaluation.pk)
    events.publish_run(evaluation.run_id)
    try:
        _evaluate(evaluation)
    except Cancelled:
        logger.info("evaluation %s was cancelled or deleted; stopped", evaluation_id)
    except Exception as exc:
        if Evaluation.objects.filter(pk=evaluation_id, status=JobStatus.RUNNING).exists():
            logger.exception("evaluation %s failed", evaluation_id)
            evaluation.fail(evaluation.run.public_text(f"{type(exc).__name__}: {exc}"))
    # A dataset whose file goes after training waited for this evaluation's rows.
    retention.release_dataset(evaluation.run.dataset)
    events.publish(evaluation_id)
    events.publish_run(evaluation.run_id)


def _evaluate(evaluation: Evaluation) -> None:
    run = evaluation.run
    config = engine_config(run)
    if evaluation.eval_file:
        rows = read_dataset(evaluation.eval_file.path, DataSpec(**evaluation.eval_spec))
    else:
        rows = records_for_run(config)[1]
    records = rows[: evaluation.limit] if evaluation.limit else rows
    chat = ChatModel(
        Path(run.base_path),
        run.adapter_dir,
        template=config.prompt_template,
        custom_template=config.custom_template,
    )
    examples = build_examples(
        chat.tokenizer, records, config.prompt_template, config.custom_template
    )
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
        has_adapter=True,
        adapter_off=chat.model.disable_adapter if chat.has_adapter else contextlib.nullcontext,
        template=config.prompt_template,
        custom_template=config.custom_template,
        max_seq_len=config.max_seq_len,
        model_dir=run.base_path,
        cache=DatabaseCache(),
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
