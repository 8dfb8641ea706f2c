"""Storage: what a user's files take (datasets, run folders), on their account page and in
the admin, and a quota that covers all of it."""

import pytest
from django.urls import reverse

from tests.factories import make_dataset, make_project, make_run
from tests.training.test_run_views import valid_form
from training.models import Run

MB = 2**20


@pytest.fixture
def project(user):
    return make_project(owner=user)


def write_run_files(run, size: int) -> None:
    folder = run.output_dir / "checkpoints" / "step-1"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x" * size)
    (run.output_dir / "run.yaml").write_bytes(b"y" * 100)


def test_a_run_folder_is_measured_and_counts_beside_datasets(user, project):
    dataset = make_dataset(project)
    run = make_run(project, dataset=dataset)
    write_run_files(run, 3 * MB)
    assert run.measure_disk() == 3 * MB + 100
    used = user.storage_used()
    assert list(used.values()) == [dataset.size_bytes, 3 * MB + 100, 0]  # no exports
    run.refresh_from_db()
    assert run.disk_bytes == 3 * MB + 100


def test_deleting_a_checkpoint_gives_its_room_back(owner_client, user, project):
    from training.engine.train import checkpoint

    run = make_run(project, status=Run.Status.COMPLETED)

    def weights(folder):
        (folder / "adapter_model.safetensors").write_bytes(b"w" * MB)

    for step in (1, 2):  # complete checkpoints, as the engine writes them
        checkpoint.write(run.output_dir, step, weights, {"seed": 1}, keep=2)
    run.measure_disk()
    before = run.disk_bytes
    assert before > 2 * MB
    owner_client.post(reverse("training:checkpoint_delete", args=[run.pk, 1]))
    run.refresh_from_db()
    assert before - run.disk_bytes >= MB
    assert sum(user.storage_used().values()) == run.disk_bytes + sum(
        project.datasets.values_list("size_bytes", flat=True)
    )


def test_the_account_page_shows_usage_against_the_quota(owner_client, user, project):
    user.storage_quota_mb = 10
    user.save(update_fields=["storage_quota_mb"])
    run = make_run(project)
    write_run_files(run, 4 * MB)
    run.measure_disk()
    page = owner_client.get(reverse("lab_account:account"))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="storage-part"' in html
    assert "Runs (adapters, checkpoints, logs)" in html
    assert "4.0\xa0MB" in html and "10.0\xa0MB" in html
    assert f'data-used="{sum(user.storage_used().values())}"' in html


def test_the_account_page_needs_a_login(client, db):
    response = client.get(reverse("lab_account:account"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_account_page_shows_only_your_own_files(other_client, user, project):
    run = make_run(project)
    write_run_files(run, 2 * MB)
    run.measure_disk()
    html = other_client.get(reverse("lab_account:account")).content.decode()
    assert 'data-used="0"' in html


def test_a_run_past_the_quota_is_refused_with_the_numbers(
    owner_client, user, project, broker, htmx_headers
):
    dataset = make_dataset(project)
    user.storage_quota_mb = 5
    user.save(update_fields=["storage_quota_mb"])
    full = make_run(project, dataset=dataset, status=Run.Status.COMPLETED)
    write_run_files(full, 5 * MB)
    full.measure_disk()
    response = owner_client.post(
        reverse("training:new", args=[project.pk]), valid_form(project, dataset), **htmx_headers
    )
    body = response.content.decode()
    assert "of your 5 MB storage quota" in body and "this run needs up to" in body
    assert Run.objects.count() == 1  # nothing new


def test_a_dataset_upload_counts_run_folders_too(user, project):
    from projects import datasets
    from projects.datasets import DatasetError

    user.storage_quota_mb = 4
    user.save(update_fields=["storage_quota_mb"])
    run = make_run(project)
    write_run_files(run, 3 * MB)
    run.measure_disk()
    datasets.check_quota_for(user, MB // 2)  # fits
    with pytest.raises(DatasetError, match=r"your files use 3\.0 MB of your 4 MB"):
        datasets.check_quota_for(user, 2 * MB)


def test_the_admin_lists_each_users_storage(client, user, project, django_user_model):
    admin = django_user_model.objects.create_superuser("ops@example.com", "pw-ops-123456")
    client.force_login(admin)
    run = make_run(project)
    write_run_files(run, 2 * MB)
    run.measure_disk()
    listing = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "2.0 MB" in listing
    change = client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert "runs (adapters, checkpoints, logs): 2.0 MB" in change
