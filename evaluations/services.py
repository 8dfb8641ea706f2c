"""Starting and cancelling evaluations; the actor is sent after commit, only here."""

from __future__ import annotations

from django.db import transaction

from evaluations import events
from evaluations.actors import run_evaluation
from evaluations.models import Evaluation
from projects.models import Project
from training.models import Run


def start_evaluation(run: Run, *, automatic: bool = False, **settings) -> Evaluation:
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            owner=run.owner, run=run, automatic=automatic, **settings
        )
        transaction.on_commit(lambda: run_evaluation.send(evaluation.pk))
    return evaluation


def start_store_evaluation(project: Project, **settings) -> Evaluation:
    """A store model alone on an eval set of ``project`` (``base_model``, ``dataset`` or an
    ``eval_file`` among ``settings``)."""
    with transaction.atomic():
        evaluation = Evaluation.objects.create(owner=project.owner, project=project, **settings)
        transaction.on_commit(lambda: run_evaluation.send(evaluation.pk))
    return evaluation


def cancel_evaluation(evaluation: Evaluation) -> bool:
    changed = evaluation.cancel()
    if changed:
        events.publish(evaluation.pk)
    return changed
