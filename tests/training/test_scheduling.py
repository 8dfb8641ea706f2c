from datetime import timedelta

import dramatiq
import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_dataset, make_project, make_run, make_user
from training.actors import train_next
from training.models import Run
from training.scheduling import claim_next, queue_position

pytestmark = pytest.mark.django_db


def runs_for(user, n: int, **extra) -> list[Run]:
    project = make_project(owner=user)
    dataset = make_dataset(project)
    return [make_run(project=project, dataset=dataset, **extra) for _ in range(n)]


def test_one_run_of_b_goes_before_nine_more_of_a():
    a, b = make_user(), make_user()
    a_runs = runs_for(a, 10)
    [b_run] = runs_for(b, 1)
    first = claim_next("w1")
    second = claim_next("w2")
    # A's oldest first (submitted first, nobody ran yet), then B's, not A's second.
    assert (first.pk, second.pk) == (a_runs[0].pk, b_run.pk)


def test_a_user_who_ran_recently_waits_behind_one_who_did_not():
    a, b = make_user(), make_user()
    runs_for(a, 1, status="completed", started=timezone.now() - timedelta(minutes=1))
    a_queued = runs_for(a, 3)
    [b_run] = runs_for(b, 1)
    assert claim_next("w1").pk == b_run.pk
    assert claim_next("w2").pk == a_queued[0].pk


def test_the_running_cap_holds_even_with_free_workers():
    a = make_user(max_running_runs=1)
    runs_for(a, 3)
    assert claim_next("w1") is not None
    assert claim_next("w2") is None
    assert Run.objects.filter(status="running").count() == 1


def test_a_higher_cap_lets_runs_of_one_user_run_side_by_side():
    a = make_user(max_running_runs=2)
    runs_for(a, 3)
    assert claim_next("w1") is not None
    assert claim_next("w2") is not None
    assert claim_next("w3") is None


def test_cancelled_runs_are_never_claimed():
    a = make_user()
    [run] = runs_for(a, 1)
    run.request_cancel()
    assert claim_next("w1") is None


def test_a_finished_run_frees_a_slot_for_the_next(django_capture_on_commit_callbacks):
    broker = dramatiq.get_broker()
    broker.flush_all()
    a = make_user(max_running_runs=1)
    failing, waiting = runs_for(a, 2)  # the model path does not exist: the run fails fast
    with django_capture_on_commit_callbacks(execute=True):
        train_next(failing.pk)
    assert Run.objects.get(pk=failing.pk).status == "failed"
    assert Run.objects.get(pk=waiting.pk).status == "queued"
    # The end of a run sends a new token, so the capped user's next run is not stranded.
    assert broker.queues["gpu"].qsize() == 1


def test_a_queued_run_shows_its_position(owner_client, user):
    other = make_user()
    runs_for(other, 2)
    [mine] = runs_for(user, 1)
    assert queue_position(mine)[0] == 2  # other's first, mine, other's second
    page = owner_client.get(reverse("training:run", args=[mine.pk])).content.decode()
    assert "Position 2 in the queue" in page


def test_the_start_estimate_uses_recent_run_durations(user):
    done = runs_for(user, 1, status="completed")[0]
    Run.objects.filter(pk=done.pk).update(
        started=timezone.now() - timedelta(minutes=10), finished=timezone.now()
    )
    other = make_user()
    runs_for(other, 1, status="running", worker="w:1", started=timezone.now())
    queued = runs_for(make_user(), 2)
    position, eta_s = queue_position(queued[1])
    assert position == 2
    assert eta_s == pytest.approx(2 * 600, rel=0.01)  # one worker busy: two 10-minute runs ahead
