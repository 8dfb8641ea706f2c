"""The pages students use most ask the database a fixed number of questions, however
many projects, datasets, versions and runs there are (no query per row)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from projects import versions
from tests.factories import make_dataset, make_project, make_run

pytestmark = pytest.mark.django_db


def queries(client, url: str) -> int:
    client.get(url)  # sessions and caches warm, as on a running server
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_dataset_page_asks_as_much_for_many_versions_as_for_one(owner_client, user):
    project = make_project(owner=user)
    dataset = make_dataset(project)
    make_run(project, dataset=dataset)
    one = queries(owner_client, dataset.get_absolute_url())
    latest = dataset
    for percent in (10, 20, 30, 40):
        latest = versions.set_split(latest, percent, 0)
        make_run(project, dataset=latest)
    assert latest.version == 5
    assert queries(owner_client, latest.get_absolute_url()) == one


def test_the_project_pages_ask_as_much_for_many_rows_as_for_few(owner_client, user):
    project = make_project(owner=user)
    make_run(project, dataset=make_dataset(project))
    few = queries(owner_client, project.get_absolute_url()), queries(owner_client, "/projects/")
    for _ in range(6):
        make_project(owner=user)
        make_run(project, dataset=make_dataset(project))
    many = queries(owner_client, project.get_absolute_url()), queries(owner_client, "/projects/")
    assert many == few


def test_the_run_page_asks_as_much_for_a_long_run_as_for_a_short_one(owner_client, user):
    from training.models import RunLog, RunMetric

    project = make_project(owner=user)
    short, long = make_run(project), make_run(project)
    for run, steps in ((short, 2), (long, 300)):
        metric = {"epoch": 0, "loss": 1, "learning_rate": 0, "tokens": 1, "tokens_per_second": 1}
        RunMetric.objects.bulk_create(
            RunMetric(run=run, step=s, elapsed_s=s, **metric) for s in range(1, steps + 1)
        )
        RunLog.objects.bulk_create(RunLog(run=run, line=f"step {s}") for s in range(steps))
    assert queries(owner_client, reverse("training:run", args=[long.pk])) == queries(
        owner_client, reverse("training:run", args=[short.pk])
    )
