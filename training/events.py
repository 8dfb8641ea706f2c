"""Websocket pushes: full-state HTML fragments to the group of one run.

The database is the truth; a push only nudges the open pages, so a lost push
costs nothing and a reload shows the same state.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

from training.forms import ChatForm
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
        "run": run,
        "chart": loss_chart([(step, loss) for step, loss, _ in rows], evals),
        "logs": logs,
        "chat_form": ChatForm(),
        "queue": _queue_info(run),
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


def publish_run(run_id: int) -> None:
    transaction.on_commit(lambda: _send(run_id, render_run_state))


def publish_chats(run_id: int) -> None:
    transaction.on_commit(lambda: _send(run_id, render_chats))


def _send(run_id: int, render) -> None:
    run = Run.objects.select_related("base_model", "dataset").get(pk=run_id)
    async_to_sync(get_channel_layer().group_send)(
        run_group(run_id), {"type": "run.update", "html": render(run)}
    )


def loss_chart(
    points: list[tuple[int, float]],
    eval_points: list[tuple[int, float]] | None = None,
    width: int = 640,
    height: int = 220,
) -> dict:
    """Scale training and validation (step, loss) points into SVG polylines on one scale.

    At most ~400 training points are drawn; validation points are few and all drawn.
    """
    pad_l, pad_r, pad_t, pad_b = 48, 12, 12, 28
    eval_points = eval_points or []
    if not points:
        return {"width": width, "height": height, "polyline": "", "ticks": [], "empty": True}
    stride = max(1, len(points) // 400)
    shown = points[::stride]
    if shown[-1] != points[-1]:
        shown.append(points[-1])
    everything = shown + eval_points
    steps = [s for s, _ in everything]
    losses = [v for _, v in everything]
    lo, hi = min(losses), max(losses)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    s0 = min(steps)
    s1 = max(max(steps), s0 + 1)
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(step: float) -> float:
        return pad_l + plot_w * (step - s0) / (s1 - s0)

    def y(loss: float) -> float:
        return pad_t + plot_h * (1 - (loss - lo) / (hi - lo))

    def line(series: list[tuple[int, float]]) -> str:
        return " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in series)

    ticks = [{"y": y(v), "label": f"{v:.3g}"} for v in (hi, (hi + lo) / 2, lo)]
    return {
        "width": width,
        "height": height,
        "polyline": line(shown),
        "eval_polyline": line(eval_points),
        "eval_dots": [{"x": x(s), "y": y(v), "step": s, "loss": v} for s, v in eval_points],
        "ticks": ticks,
        "empty": False,
        "left": pad_l,
        "right": width - pad_r,
        "bottom": height - pad_b,
        "first_step": s0,
        "last_step": max(steps),
        "last_loss": points[-1][1],
    }
