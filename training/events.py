"""Websocket pushes: full-state HTML fragments to the group of one run.

The database is the truth; a push only nudges the open pages, so a lost push
costs nothing and a reload shows the same state.
"""

from django.db import transaction
from django.template.loader import render_to_string

from slmlab.charts import loss_chart
from slmlab.consumers import push_to_group
from training.engine.design.counts import total_parameters
from training.engine.design.spec import Design, architecture_of
from training.forms import ChatForm, GenerateForm
from training.models import Run
from training.scheduling import queue_position


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def run_context(run: Run) -> dict:
    rows = list(run.metrics.values_list("step", "loss", "eval_loss"))
    evals = [(step, v) for step, _, v in rows if v is not None]
    if evals and run.base_eval_loss is not None:
        evals.insert(0, (0, run.base_eval_loss))
    logs = list(run.logs.order_by("-id").values_list("created", "line")[:200])[::-1]
    return {
        **pretraining_context(run),
        "run": run,
        "chart": loss_chart([(step, loss) for step, loss, _ in rows], evals),
        "logs": logs,
        "chat_form": ChatForm(),
        "queue": _queue_info(run),
        "precision": _precision(run),
    }


# The engine's first log line of an attempt says what precision it picked, and why.
PRECISION_LOG_PREFIX = "precision: "


def _precision(run: Run) -> str:
    line = (
        run.logs.filter(line__startswith=PRECISION_LOG_PREFIX)
        .order_by("-id")
        .values_list("line", flat=True)
        .first()
    )
    return line.removeprefix(PRECISION_LOG_PREFIX) if line else ""


def pretraining_context(run: Run) -> dict:
    """A pretraining run's samples, design facts, MFU and generate form; {} otherwise."""
    if not run.is_pretraining:
        return {}
    design = run.config.get("design")
    facts = None
    if design:
        parsed = Design.from_dict(design)
        facts = {"architecture": architecture_of(parsed), "parameters": total_parameters(parsed)}
    return {
        "samples": list(run.samples.order_by("-step")[:12])[::-1],
        "pretraining": facts,
        "mfu_percent": None if run.mfu is None else 100 * run.mfu,
        "generate_form": GenerateForm(),
        "generations": run.text_generations.all()[:10],
    }


def _queue_info(run: Run) -> dict | None:
    place = queue_position(run)
    if place is None:
        return None
    position, eta_s = place
    return {
        "position": position,
        "eta_minutes": None if eta_s is None else max(1, round(eta_s / 60)),
    }


def render_run_state(run: Run) -> str:
    """The live panel plus the after-training panel, as the websocket sends them."""
    context = run_context(run)
    return render_to_string("training/run_detail.html#live", context) + render_to_string(
        "training/run_detail.html#after", context
    )


def render_chats(run: Run) -> str:
    return render_to_string("training/run_detail.html#chats", {"run": run})


def render_generations(run: Run) -> str:
    return render_to_string(
        "training/_generate.html#generations",
        {"run": run, "generations": run.text_generations.all()[:10]},
    )


def publish_generations(run_id: int) -> None:
    transaction.on_commit(lambda: _send(run_id, render_generations))


def publish_run(run_id: int) -> None:
    transaction.on_commit(lambda: _send(run_id, render_run_state))


def publish_chats(run_id: int) -> None:
    transaction.on_commit(lambda: _send(run_id, render_chats))


def _send(run_id: int, render) -> None:
    run = Run.objects.select_related("base_model", "base_run", "dataset").get(pk=run_id)
    push_to_group(run_group(run_id), render(run))
