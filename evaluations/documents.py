"""Evaluation results as JSON documents (see README "Evaluation results")."""

from __future__ import annotations

from evaluations.models import Evaluation


def evaluation_document(evaluation: Evaluation, with_rows: bool = True) -> dict:
    doc = {
        "id": evaluation.pk,
        "run": evaluation.run_id,
        # A store model evaluated alone has no run: its replies are the "base" ones.
        "model": evaluation.model_name,
        "project": evaluation.project_id if not evaluation.of_run else evaluation.run.project_id,
        "dataset": evaluation.dataset_id,
        "uploaded_eval_file": bool(evaluation.eval_file),
        "status": evaluation.status,
        "error": evaluation.error or None,
        "automatic": evaluation.automatic,
        "settings": {
            "limit": evaluation.limit,
            "metrics": evaluation.metrics,
            "ignore_case": evaluation.ignore_case,
            "regex": evaluation.regex,
            "max_new_tokens": evaluation.max_new_tokens,
            "temperature": evaluation.temperature,
            "top_p": evaluation.top_p,
            "seed": evaluation.seed,
        },
        "base_outputs_cached": evaluation.base_cached,
        "summary": evaluation.summary or None,
        "created": evaluation.created.isoformat(),
        "finished": evaluation.finished.isoformat() if evaluation.finished else None,
    }
    if with_rows:
        doc["examples"] = [
            {
                "index": r.index,
                "prompt": r.prompt,
                "expected": r.expected,
                "base_output": r.base_output,
                "tuned_output": r.tuned_output,
                "base_scores": r.base_scores,
                "tuned_scores": r.tuned_scores,
                "changed": r.changed,
                "tuned_worse": r.worse,
            }
            for r in evaluation.rows.all()
        ]
    return doc
