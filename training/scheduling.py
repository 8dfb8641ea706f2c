"""A fair queue on top of Dramatiq.

Every queued run puts one `train_next` message on the GPU queue. A message is a
token for "a worker is free", not for one run: the worker that takes it claims the
fairest eligible run at that moment. Eligible: queued (or interrupted, which resumes
from its checkpoint), not cancelled, and its owner below their running-runs cap.
Fairest: an interrupted run first, then the owner with the fewest running runs, then
the owner who waited longest since their last start, then the oldest run.
So when user A has queued ten runs and user B one, B's starts next.

Tokens are never lost: a token that finds nothing eligible exits, and whenever a
run leaves the running state (finished, cancelled, interrupted) a new token is
sent, which is what unblocks a capped user's next run.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from accounts.models import User
from training.models import Run, Worker

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _queue_state() -> tuple[list[Run], dict[int, int], dict[int, datetime], dict[int, int]]:
    queued = list(
        Run.objects.filter(status__in=Run.WAITING, cancel_requested=False)
        .select_related("owner")
        .order_by("created", "pk")
    )
    running = dict(
        Run.objects.filter(status=Run.Status.RUNNING)
        .values("owner")
        .annotate(n=Count("id"))
        .values_list("owner", "n")
    )
    last_start = dict(
        Run.objects.filter(started__isnull=False)
        .values("owner")
        .annotate(t=Max("started"))
        .values_list("owner", "t")
    )
    caps = {run.owner_id: run.owner.max_running_runs for run in queued}
    return queued, running, last_start, caps


def fair_order(
    queued: list[Run],
    running: dict[int, int],
    last_start: dict[int, datetime],
    caps: dict[int, int],
) -> list[Run]:
    """The order in which queued runs would start if workers kept freeing up.

    Simulates the scheduler: pick the fairest eligible run, count it as running,
    repeat. Runs of a user at their cap come after everyone else's (they wait for
    one of their own runs to finish), in the same fair order.
    """
    running = dict(running)
    last_start = dict(last_start)
    waiting = list(queued)
    order: list[Run] = []
    while waiting:
        eligible = [r for r in waiting if running.get(r.owner_id, 0) < caps.get(r.owner_id, 1)]
        pool = eligible or waiting  # only capped users left: they go in turn
        best = min(
            pool,
            key=lambda r: (
                # An interrupted run already had its turn and was cut short: it goes on first.
                r.status != Run.Status.INTERRUPTED,
                running.get(r.owner_id, 0) if eligible else 0,
                last_start.get(r.owner_id, _EPOCH),
                r.created,
                r.pk,
            ),
        )
        order.append(best)
        waiting.remove(best)
        if eligible:
            running[best.owner_id] = running.get(best.owner_id, 0) + 1
        else:
            # A capped user's run starts when one of theirs ends: count it in place of that.
            running[best.owner_id] = running.get(best.owner_id, 0)
        last_start[best.owner_id] = timezone.now()
    return order


def claim_next(worker: str) -> Run | None:
    """Claim the fairest eligible run for ``worker``; None when nothing may start now."""
    queued, running, last_start, caps = _queue_state()
    for candidate in fair_order(queued, running, last_start, caps):
        if running.get(candidate.owner_id, 0) >= caps[candidate.owner_id]:
            continue
        with transaction.atomic():
            # Serialize claims per user so two workers cannot both pass the cap check.
            User.objects.select_for_update().filter(pk=candidate.owner_id).first()
            busy = Run.objects.filter(owner_id=candidate.owner_id, status=Run.Status.RUNNING)
            if busy.count() >= caps[candidate.owner_id]:
                continue
            if candidate.claim(worker):
                return candidate
    return None


def typical_run_seconds() -> float | None:
    """Median duration of recent completed runs, for start-time estimates."""
    durations = [
        (finished - started).total_seconds()
        for started, finished in Run.objects.filter(
            status=Run.Status.COMPLETED, started__isnull=False, finished__isnull=False
        )
        .order_by("-finished")
        .values_list("started", "finished")[:50]
    ]
    return statistics.median(durations) if durations else None


def queue_position(run: Run) -> tuple[int, float | None] | None:
    """(1-based position in the fair order, estimated seconds until it starts) for a queued run."""
    if run.status not in Run.WAITING or run.cancel_requested:
        return None
    queued, running, last_start, caps = _queue_state()
    order = [r.pk for r in fair_order(queued, running, last_start, caps)]
    if run.pk not in order:
        return None
    position = order.index(run.pk) + 1
    typical = typical_run_seconds()
    workers = max(1, sum(1 for w in Worker.objects.all() if w.is_alive))
    busy = sum(running.values())
    eta = None
    if typical is not None:
        # Each free worker starts one run now; after that a slot frees every typical/workers s.
        ahead = max(0, position - max(0, workers - busy))
        eta = ahead * typical / workers
    return position, eta
