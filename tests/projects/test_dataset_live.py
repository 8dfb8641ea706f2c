"""The dataset's websocket: its owner follows statistics, checks and previews; nobody else."""

from dataclasses import asdict

import pytest

from projects import events
from projects.jobs.preview import preview
from projects.models import DatasetCheck
from projects.services import request_stats
from slmlab.consumers import NOT_FOUND
from tests import websockets
from tests.factories import make_base_model, make_dataset, make_project, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dataset(user):
    return make_dataset(make_project(owner=user))


def path_of(dataset) -> str:
    return f"/ws/datasets/{dataset.pk}/"


def test_the_owner_gets_the_statistics_and_running_checks_at_once(dataset):
    stats = request_stats(dataset, make_base_model(), 64)
    DatasetCheck.objects.create(dataset=dataset, spec=asdict(dataset.spec()))

    connected, _, first = websockets.connect(path_of(dataset), dataset.owner)

    assert connected
    assert f'id="stats-panel-{stats.pk}"' in first and 'id="stats-summary"' in first
    assert 'id="settings-check"' in first and 'data-status="queued"' in first


@pytest.mark.parametrize("who", ["other", "anonymous", "missing"])
def test_anyone_else_is_refused_like_a_404(dataset, who):
    user = {"other": make_user(), "anonymous": None, "missing": dataset.owner}[who]
    path = "/ws/datasets/999999/" if who == "missing" else path_of(dataset)

    connected, code, _ = websockets.connect(path, user)

    assert not connected and code == NOT_FOUND


def test_a_check_s_progress_is_pushed_to_the_open_page(dataset):
    check = DatasetCheck.objects.create(dataset=dataset, spec=asdict(dataset.spec()))

    def progress():
        assert check.claim() and check.report(rows_done=1234)
        events.publish_check(check.pk)

    pushed = websockets.push_after_connect(path_of(dataset), dataset.owner, progress)
    assert 'data-status="running"' in pushed and "1,234" in pushed


def test_the_worker_s_preview_reaches_the_page_that_asked(dataset, bundled_model_dir):
    model = make_base_model(path=str(bundled_model_dir))

    def worker_tokenizes():
        preview(dataset.pk, asdict(dataset.spec()), model.pk, "abc123")

    pushed = websockets.push_after_connect(path_of(dataset), dataset.owner, worker_tokenizes)
    assert pushed.lstrip().startswith('<div id="preview-abc123"')
    assert "tok-trained" in pushed and "tok-masked" in pushed
