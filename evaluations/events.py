"""Websocket pushes: an evaluation's progress panel to the pages following it."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string

from evaluations.models import Evaluation
from slmlab.consumers import push_to_group
from training import events as run_events


def group(evaluation_id: int) -> str:
    return f"evaluation-{evaluation_id}"


def render_progress(evaluation: Evaluation) -> str:
    return render_to_string("evaluations/detail.html#progress", {"evaluation": evaluation})


def publish(evaluation_id: int) -> None:
    def send() -> None:
        evaluation = Evaluation.objects.filter(pk=evaluation_id).first()
        if evaluation is not None:
            push_to_group(group(evaluation_id), render_progress(evaluation))

    transaction.on_commit(send)


def publish_run(run_id: int) -> None:
    """The run page lists its evaluations: nudge it when one starts or ends."""
    run_events.publish_run(run_id)
