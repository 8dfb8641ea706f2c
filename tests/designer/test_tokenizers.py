"""Tokenizer training on the CPU worker, its page with sample tokenizations; tenancy."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from designer.models import TrainedTokenizer
from tests.factories import make_dataset, make_project

pytestmark = pytest.mark.django_db

ROWS = [
    {"instruction": f"Tell me about the {w} near the {p}.", "output": f"The {w} is by the {p}."}
    for w in ("river", "tower", "garden", "bridge", "market")
    for p in ("school", "hill", "harbour", "station")
]


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_it_trains_a_tokenizer_on_the_worker_and_shows_it(
    owner_client, user, broker, run_queued, data_dir, django_capture_on_commit_callbacks
):
    project = make_project(user)
    dataset = make_dataset(project, ROWS)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("designer:tokenizers", args=(project.pk,)),
            {"dataset": dataset.pk, "vocab_size": 400},
        )
    job = TrainedTokenizer.objects.get()
    assert response.status_code == 302 and job.status == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued(django_settings.QUEUE_DEFAULT) == ["train_tokenizer"]
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.trained_vocab_size <= 400 and 0.5 < job.tokens_per_word < 3
    assert (job.folder / "tokenizer.json").exists()
    url = reverse("designer:tokenizer", args=(project.pk, job.pk))
    body = owner_client.get(url, {"sentence": "the river"}).content.decode()
    assert 'data-testid="vocab"' in body, body
    assert "<mark> river</mark>" in body


def test_a_second_delivery_does_nothing(user, data_dir):
    from designer.jobs.tokenizer import train

    project = make_project(user)
    job = TrainedTokenizer.objects.create(
        owner=user, project=project, dataset=make_dataset(project, ROWS), vocab_size=300
    )
    job.claim()
    train(job.pk)  # already claimed elsewhere
    job.refresh_from_db()
    assert job.status == "running" and job.trained_vocab_size is None


def test_it_refuses_another_users_dataset_and_a_bad_vocabulary(owner_client, user, other_user):
    project = make_project(user)
    foreign = make_dataset(make_project(other_user), ROWS)
    url = reverse("designer:tokenizers", args=(project.pk,))
    assert owner_client.post(url, {"dataset": foreign.pk, "vocab_size": 400}).status_code == 400
    mine = make_dataset(project, ROWS)
    assert owner_client.post(url, {"dataset": mine.pk, "vocab_size": 3}).status_code == 400
    assert not TrainedTokenizer.objects.exists()


def test_another_user_gets_404_and_anonymous_login(other_client, client, user):
    project = make_project(user)
    job = TrainedTokenizer.objects.create(
        owner=user, project=project, dataset=make_dataset(project, ROWS)
    )
    urls = [
        reverse("designer:tokenizers", args=(project.pk,)),
        reverse("designer:tokenizer", args=(project.pk, job.pk)),
    ]
    for url in urls:
        assert other_client.get(url).status_code == 404
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_the_websocket_follows_only_the_owners_tokenizer(user, other_user):
    from designer import events
    from tests import websockets

    project = make_project(user)
    job = TrainedTokenizer.objects.create(
        owner=user, project=project, dataset=make_dataset(project, ROWS), status="running"
    )
    path = f"/ws/tokenizers/{job.pk}/"
    connected, _, state = websockets.connect(path, user)
    assert connected and 'data-testid="tokenizer-status"' in state
    assert websockets.connect(path, other_user)[0] is False
    assert websockets.connect(path, None)[0] is False

    def progress():
        TrainedTokenizer.objects.filter(pk=job.pk).update(progress=0.5)
        events.publish_tokenizer(job.pk)

    pushed = websockets.push_after_connect(path, user, progress)
    assert 'value="0.5"' in pushed
