"""The evaluation a run gets when it ends, if its dataset holds validation rows."""

from __future__ import annotations

from django.db import transaction

from evaluations.actors import run_evaluation
from evaluations.models import Evaluation
from training.engine.evaluate.metrics import DEFAULT_METRICS
from training.models import Run


def queue_end_of_run(run: Run) -> Evaluation | None:
    """Queue the run's end-of-run evaluation (``eval_examples`` validation rows); None when
    it asks for none or its dataset has no validation rows. Called by the training
    worker, which cannot go through services."""
    limit = int(run.config.get("eval_examples", 100) or 0)
    if not limit or not run.dataset.split_sizes()[1]:
        return None
    if run.dataset.shape == "text":
        return None  # plain text has no expected outputs
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            owner=run.owner,
            run=run,
            automatic=True,
            limit=limit,
            metrics=[*DEFAULT_METRICS, "loss"],
        )
        transaction.on_commit(lambda: run_evaluation.send(evaluation.pk))
    return evaluation
