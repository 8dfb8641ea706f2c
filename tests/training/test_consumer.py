import pytest

from slmlab.consumers import NOT_FOUND
from tests import websockets
from tests.factories import make_run, make_user
from training.events import publish_run

pytestmark = pytest.mark.django_db(transaction=True)


def connect(run_id: int, user):
    return websockets.connect(f"/ws/runs/{run_id}/", user)


def test_the_owner_gets_the_full_state_at_once():
    run = make_run()
    connected, _, first = connect(run.pk, run.owner)
    assert connected
    assert 'id="run-live"' in first and 'data-status="queued"' in first
    assert 'id="run-after"' in first and 'id="chat-list"' in first


def test_another_user_is_refused_like_a_404():
    run = make_run()
    connected, code, _ = connect(run.pk, make_user())
    assert not connected
    assert code == NOT_FOUND


def test_an_anonymous_visitor_is_refused():
    run = make_run()
    connected, code, _ = connect(run.pk, None)
    assert not connected
    assert code == NOT_FOUND


def test_a_missing_run_is_refused():
    connected, code, _ = connect(999_999, make_user())
    assert not connected
    assert code == NOT_FOUND


def test_a_push_reaches_the_open_page_with_full_state():
    run = make_run()

    def progress():
        type(run).objects.filter(pk=run.pk).update(status="running", step=3, total_steps=6)
        publish_run(run.pk)

    pushed = websockets.push_after_connect(f"/ws/runs/{run.pk}/", run.owner, progress)
    assert 'data-status="running"' in pushed
    assert 'value="50" max="100"' in pushed
