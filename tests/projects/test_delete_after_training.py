"""A dataset marked "delete the file after training" loses its file once the last run
using it ends; its row, preview and statistics stay, and nothing can read the file again."""

from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import make_base_model, make_dataset, make_project, make_run
from tests.projects.test_versions import ROWS, post_split, replace, url
from training import retention
from training.jobs.train import train_claimed
from training.models import Run
from training.services import cancel_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Private")


@pytest.fixture
def dataset(project):
    dataset = make_dataset(project, rows=ROWS)
    dataset.delete_after_training = True
    dataset.save(update_fields=["delete_after_training"])
    return dataset


def file_of(dataset) -> Path:
    return Path(dataset.file.path)


def test_the_owner_turns_it_on_in_the_details_form(owner_client, project, htmx_headers):
    dataset = make_dataset(project, rows=ROWS)
    response = owner_client.post(
        url("dataset_details", dataset),
        {"name": dataset.name, "description": "", "delete_after_training": "on"},
        **htmx_headers,
    )
    assert response.status_code in (200, 204)
    dataset.refresh_from_db()
    assert dataset.delete_after_training
    assert file_of(dataset).exists()  # never trained on: it stays for now
    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert 'data-testid="delete-after-training"' in page


def test_turning_it_on_after_training_deletes_at_once(
    owner_client, project, django_capture_on_commit_callbacks
):
    dataset = make_dataset(project, rows=ROWS)
    make_run(project, dataset=dataset, status=Run.Status.COMPLETED)
    path = file_of(dataset)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            url("dataset_details", dataset),
            {"name": dataset.name, "description": "", "delete_after_training": "on"},
        )
    dataset.refresh_from_db()
    assert dataset.file_deleted_at is not None and not path.exists()


def test_the_file_goes_when_the_last_run_ends_not_before(
    dataset, project, django_capture_on_commit_callbacks
):
    base = make_base_model()
    first = make_run(project, dataset=dataset, base_model=base, status=Run.Status.RUNNING)
    second = make_run(project, dataset=dataset, base_model=base)  # queued
    path = file_of(dataset)
    Run.objects.filter(pk=first.pk).update(status=Run.Status.COMPLETED)
    with django_capture_on_commit_callbacks(execute=True):
        assert retention.after_run_ended(first) is False  # the second still waits
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_run(second)  # a queued run is final at once
    dataset.refresh_from_db()
    assert dataset.file_deleted_at is not None
    assert not path.exists()
    assert dataset.preview and dataset.row_count == len(ROWS)  # what the page shows stays


def test_a_run_that_fails_on_the_worker_also_ends_training(
    dataset, project, django_capture_on_commit_callbacks
):
    # A model folder that does not exist: the worker's training fails at once.
    broken = make_base_model(name="broken", path="/nonexistent/model")
    run = make_run(project, dataset=dataset, base_model=broken, status=Run.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        train_claimed(Run.objects.select_related("base_model", "dataset").get(pk=run.pk))
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    dataset.refresh_from_db()
    assert dataset.file_deleted_at is not None and not file_of(dataset).exists()


@pytest.fixture
def deleted(dataset, project, django_capture_on_commit_callbacks):
    run = make_run(project, dataset=dataset, status=Run.Status.COMPLETED)
    with django_capture_on_commit_callbacks(execute=True):
        assert retention.after_run_ended(run)
    dataset.refresh_from_db()
    return dataset


def test_a_deleted_file_frees_its_storage_and_the_page_says_so(owner_client, user, deleted):
    assert user.storage_used()["datasets"] == 0
    page = owner_client.get(deleted.get_absolute_url()).content.decode()
    assert 'data-testid="file-deleted"' in page
    assert "Train on this" not in page


def test_nothing_can_use_or_change_a_deleted_file(owner_client, deleted, htmx_headers):
    message = "was deleted after training"
    assert message in post_split(owner_client, deleted).content.decode()
    assert message in replace(owner_client, deleted).content.decode()
    preview = owner_client.get(url("dataset_preview", deleted), **htmx_headers)
    assert message in preview.content.decode()
    stats = owner_client.post(
        url("dataset_stats_compute", deleted), {"base_model": make_base_model().pk, "max_len": 64}
    )
    assert message in stats.content.decode()
    page = owner_client.get(reverse("training:new", args=[deleted.project_id]))
    assert deleted not in page.context["form"].fields["dataset"].queryset
    deleted.refresh_from_db()
    assert deleted.version == 1 and deleted.children.count() == 0
