"""A dataset a run used never changes: content edits make a new version; unused ones change."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import Dataset, DatasetStats, ImmutableDatasetError
from tests.factories import ALPACA_ROWS, make_base_model, make_dataset, make_project, make_run

pytestmark = pytest.mark.django_db

NEW = b'{"instruction": "Q1", "output": "A1"}\n{"instruction": "Q2", "output": "A2"}\n'
VALIDATION = b'{"instruction": "V", "output": "W"}\n'
ROWS = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(20)]


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Bot")


def media_files() -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    files = {p for p in root.rglob("*") if p.is_file()}
    return {p for p in files if p.relative_to(root).parts[0] != "tmp"}


def no_temporary_files() -> bool:
    return not any((Path(settings.MEDIA_ROOT) / "tmp").glob("*"))


def url(name: str, dataset: Dataset) -> str:
    return reverse(f"projects:{name}", args=[dataset.project_id, dataset.pk])


def post_split(client, dataset, percent=20, seed=3, file=None):
    data = {"val_percent": percent, "split_seed": seed}
    if file is not None:
        data["validation_file"] = SimpleUploadedFile("val.jsonl", file)
    return client.post(url("dataset_split", dataset), data)


def replace(client, dataset, content=NEW, name="new.jsonl"):
    return client.post(url("dataset_replace", dataset), {"file": SimpleUploadedFile(name, content)})


def snapshot(dataset: Dataset) -> dict:
    dataset.refresh_from_db()
    return {
        **{f: str(getattr(dataset, f)) for f in Dataset.CONTENT_FIELDS},
        "bytes": Path(dataset.file.path).read_bytes(),
    }


# --- Unused datasets change in place ---


def test_a_split_on_an_unused_dataset_changes_it_in_place(owner_client, project):
    dataset = make_dataset(project, ROWS)
    response = post_split(owner_client, dataset, percent=25, seed=9)
    assert response["Location"] == dataset.get_absolute_url()
    dataset.refresh_from_db()
    assert (dataset.val_percent, dataset.split_seed, dataset.version) == (25, 9, 1)
    assert Dataset.objects.count() == 1
    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert "15 training rows, 5 validation rows (25%, seed 9)" in page


def test_replacing_the_file_of_an_unused_dataset_changes_it_in_place(
    owner_client, project, django_capture_on_commit_callbacks
):
    dataset = make_dataset(project, ROWS)
    old_file = Path(dataset.file.path)
    with django_capture_on_commit_callbacks(execute=True):
        response = replace(owner_client, dataset)
    assert response["Location"] == dataset.get_absolute_url()
    dataset.refresh_from_db()
    assert (dataset.row_count, dataset.version, Dataset.objects.count()) == (2, 1, 1)
    assert Path(dataset.file.path).read_bytes() == NEW
    assert dataset.preview[0]["turns"][0]["content"].startswith("Q1")
    assert not old_file.exists()
    assert media_files() == {Path(dataset.file.path)}


def test_replacing_drops_statistics_of_the_old_rows(owner_client, project):
    dataset = make_dataset(project, ROWS)
    model = make_base_model()
    DatasetStats.objects.create(dataset=dataset, base_model=model, max_len=99, status="done")
    replace(owner_client, dataset)
    assert not DatasetStats.objects.filter(max_len=99).exists()
    assert DatasetStats.objects.get(dataset=dataset).status == "queued"  # the new rows


# --- Used datasets make new versions ---


def test_a_split_on_a_used_dataset_makes_version_2_and_leaves_version_1_as_the_run_saw_it(
    owner_client, project
):
    run = make_run(project=project, dataset=make_dataset(project, ROWS))
    used = run.dataset
    DatasetStats.objects.create(
        dataset=used, base_model=run.base_model, max_len=64, status="done", result={"rows": 20}
    )
    before = snapshot(used)
    response = post_split(owner_client, used, percent=10, seed=1)
    new = Dataset.objects.exclude(pk=used.pk).get()
    assert response["Location"] == new.get_absolute_url()
    assert snapshot(used) == before
    run.refresh_from_db()
    assert run.dataset_id == used.pk
    assert (new.version, new.parent_id, new.lineage) == (2, used.pk, used.lineage)
    assert (new.val_percent, new.split_seed, new.split_sizes()) == (10, 1, (18, 2))
    assert Path(new.file.path).read_bytes() == before["bytes"]
    assert new.file.path != used.file.path
    assert new.stats.get().result == {"rows": 20}  # same rows, same statistics
    message = owner_client.get(new.get_absolute_url()).content.decode()
    assert "this is version 2; version 1 is unchanged" in message
    assert 'data-testid="dataset-version">v2<' in message


def test_replacing_the_file_of_a_used_dataset_makes_a_new_version(owner_client, project):
    run = make_run(project=project, dataset=make_dataset(project, ROWS))
    used = run.dataset
    before = snapshot(used)
    replace(owner_client, used)
    new = Dataset.objects.exclude(pk=used.pk).get()
    assert snapshot(used) == before
    assert (new.version, new.parent_id, new.row_count, new.name) == (2, used.pk, 2, used.name)
    assert Path(new.file.path).read_bytes() == NEW
    # The version list on either page shows both, newest first.
    page = owner_client.get(used.get_absolute_url()).content.decode()
    versions = page[page.index('data-testid="versions"') :]
    assert versions.index("v2") < versions.index("v1")
    assert "used by a run" in versions


def test_saving_the_same_split_makes_no_version(owner_client, project):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    response = post_split(owner_client, used, percent=0, seed=0)
    assert response["Location"] == used.get_absolute_url()
    assert Dataset.objects.count() == 1


def test_versions_keep_counting_when_an_older_used_version_changes_again(owner_client, project):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    post_split(owner_client, used, percent=10)
    post_split(owner_client, used, percent=20)
    assert sorted(Dataset.objects.values_list("version", flat=True)) == [1, 2, 3]


def test_deleting_a_new_version_leaves_the_used_file_alone(
    owner_client, project, django_capture_on_commit_callbacks
):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    post_split(owner_client, used)
    new = Dataset.objects.exclude(pk=used.pk).get()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url("dataset_delete", new))
    assert not Dataset.objects.filter(pk=new.pk).exists()
    assert Path(used.file.path).read_bytes() == snapshot(used)["bytes"]
    # and a used version still cannot be deleted
    owner_client.post(url("dataset_delete", used))
    assert Dataset.objects.filter(pk=used.pk).exists()


def test_the_model_refuses_a_content_change_to_a_used_dataset_but_not_a_rename():
    dataset = make_run().dataset
    dataset.val_percent = 30
    with pytest.raises(ImmutableDatasetError):
        dataset.save()
    dataset.refresh_from_db()
    dataset.name = "renamed"
    dataset.description = "why"
    dataset.save()
    assert Dataset.objects.get(pk=dataset.pk).name == "renamed"


def test_name_and_description_change_in_place_even_when_used(owner_client, project):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    response = owner_client.post(
        url("dataset_details", used), {"name": "Greetings", "description": "v1 of the data"}
    )
    assert response["Location"] == used.get_absolute_url()
    used.refresh_from_db()
    assert (used.name, used.description, Dataset.objects.count()) == (
        "Greetings",
        "v1 of the data",
        1,
    )
    response = owner_client.post(url("dataset_details", used), {"name": "  ", "description": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    used.refresh_from_db()
    assert used.name == "Greetings"


# --- Validation file ---


def test_a_validation_file_replaces_the_share_and_is_counted(
    owner_client, project, django_capture_on_commit_callbacks
):
    dataset = make_dataset(project, ROWS)
    post_split(owner_client, dataset, percent=30, file=VALIDATION * 3)
    dataset.refresh_from_db()
    assert dataset.validation_row_count == 3
    assert Path(dataset.validation_file.path).read_bytes() == VALIDATION * 3
    assert dataset.split_sizes() == (20, 3)
    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert "20 training rows; 3 validation rows from a separate file." in page
    # Back to a share: the file goes.
    path = Path(dataset.validation_file.path)
    with django_capture_on_commit_callbacks(execute=True):
        post_split(owner_client, dataset, percent=10)
    dataset.refresh_from_db()
    assert not dataset.validation_file
    assert not path.exists()
    assert dataset.split_sizes() == (18, 2)


def test_a_bad_validation_file_is_refused_with_its_line_and_changes_nothing(owner_client, project):
    dataset = make_dataset(project, ROWS)
    before = media_files()
    response = post_split(owner_client, dataset, file=VALIDATION + b'{"instruction": 5}\n')
    body = response.content.decode()
    assert response.status_code == 200
    assert "line 2" in body and "expected a string" in body
    dataset.refresh_from_db()
    assert (dataset.val_percent, dataset.validation_file.name) == (0, "")
    assert media_files() == before
    assert no_temporary_files()


def test_a_validation_file_on_a_used_dataset_goes_to_a_new_version(owner_client, project):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    post_split(owner_client, used, file=VALIDATION)
    new = Dataset.objects.exclude(pk=used.pk).get()
    used.refresh_from_db()
    assert not used.validation_file
    assert new.validation_row_count == 1 and new.version == 2


def upload_csv(client, project, content: bytes) -> Dataset:
    upload = SimpleUploadedFile("quiz.csv", content)
    client.post(reverse("projects:dataset_upload", args=[project.pk]), {"file": upload})
    return Dataset.objects.get(file_format="csv")


def test_a_csv_dataset_takes_a_csv_validation_file_read_like_it(owner_client, project):
    dataset = upload_csv(owner_client, project, b"question,answer\nq1,a1\nq2,a2\n")

    response = owner_client.post(
        url("dataset_split", dataset),
        {"val_percent": 0, "split_seed": 0,
         "validation_file": SimpleUploadedFile("val.csv", b"question,answer\nv1,b1\n")},
    )  # fmt: skip

    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.validation_row_count == 1 and dataset.split_sizes() == (2, 1)
    jsonl = SimpleUploadedFile("v.jsonl", VALIDATION)
    refused = owner_client.post(
        url("dataset_split", dataset), {"val_percent": 0, "split_seed": 0, "validation_file": jsonl}
    )
    assert "Expected a .csv file" in refused.content.decode()


def test_a_file_can_be_replaced_by_one_in_another_format(owner_client, project):
    dataset = make_dataset(project, ROWS)

    response = replace(owner_client, dataset, b"prompt,completion\nHi,Hello\n", name="new.csv")

    assert response.status_code == 302
    dataset.refresh_from_db()
    assert (dataset.file_format, dataset.shape, dataset.row_count) == (
        "csv",
        "prompt_completion",
        1,
    )


def test_a_bad_replacement_is_refused_with_its_line_and_changes_nothing(owner_client, project):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    unused = make_dataset(project, ALPACA_ROWS, name="other")
    files = media_files()
    for dataset in (used, unused):
        before = snapshot(dataset)
        response = replace(owner_client, dataset, NEW + b"{oops\n")
        assert response.status_code == 200
        assert "line 3" in response.content.decode()
        assert snapshot(dataset) == before
    assert Dataset.objects.count() == 2
    assert media_files() == files
    assert no_temporary_files()


@pytest.mark.parametrize("percent", [-1, 51])
def test_a_share_outside_0_to_50_percent_is_refused(owner_client, project, percent):
    dataset = make_dataset(project, ROWS)
    response = post_split(owner_client, dataset, percent=percent)
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    dataset.refresh_from_db()
    assert dataset.val_percent == 0


# --- Ownership ---


def edit_requests(dataset) -> list[tuple[str, dict]]:
    return [
        (url("dataset_split", dataset), {"val_percent": 10, "split_seed": 1}),
        (url("dataset_replace", dataset), {"file": SimpleUploadedFile("x.jsonl", NEW)}),
        (url("dataset_details", dataset), {"name": "stolen", "description": ""}),
    ]


def test_edits_404_for_another_user_and_change_nothing(other_client, project):
    dataset = make_dataset(project, ROWS)
    before = snapshot(dataset)
    for target, data in edit_requests(dataset):
        assert other_client.post(target, data).status_code == 404, target
    assert snapshot(dataset) == before
    assert Dataset.objects.get().name == "data"


def test_edits_send_anonymous_users_to_login(client, project):
    dataset = make_dataset(project, ROWS)
    for target, data in edit_requests(dataset):
        response = client.post(target, data)
        assert response.status_code == 302, target
        assert response["Location"].startswith(reverse("account_login"))
    assert Dataset.objects.get().name == "data"


def test_the_version_pages_are_the_owners_only(other_client, owner_client, project):
    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    post_split(owner_client, used)
    new = Dataset.objects.exclude(pk=used.pk).get()
    assert owner_client.get(new.get_absolute_url()).status_code == 200
    assert other_client.get(new.get_absolute_url()).status_code == 404
    assert (new.owner_id, new.project_id) == (used.owner_id, used.project_id)


def test_deleting_a_dataset_or_its_project_removes_its_validation_file(
    owner_client, project, django_capture_on_commit_callbacks
):
    first, second = make_dataset(project, ROWS), make_dataset(project, ROWS, name="b")
    for dataset in (first, second):
        post_split(owner_client, dataset, file=VALIDATION)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url("dataset_delete", first))
    assert len(media_files()) == 2  # the second's two files
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("projects:delete", args=[project.pk]))
    assert media_files() == set()


def test_operators_see_versions_in_the_admin_but_cannot_edit_content(client, project):
    from tests.factories import make_user

    used = make_run(project=project, dataset=make_dataset(project, ROWS)).dataset
    client.force_login(make_user("op@example.com", is_staff=True, is_superuser=True))
    change = reverse("admin:projects_dataset_change", args=[used.pk])
    page = client.get(change).content.decode()
    assert 'name="val_percent"' not in page and 'name="name"' in page
    assert client.get(reverse("admin:projects_dataset_changelist")).status_code == 200
