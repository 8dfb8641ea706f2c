from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import Dataset
from tests.factories import make_dataset, make_project, make_run

pytestmark = pytest.mark.django_db

GOOD = (
    b'{"instruction": "Say hi", "input": "", "output": "hi"}\n'
    b'{"instruction": "Add", "input": "2 + 2", "output": "4"}\n'
)


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Bot")


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def upload(client, project, content: bytes, filename="data.jsonl", **headers):
    return client.post(
        reverse("projects:dataset_upload", args=[project.pk]),
        {"file": SimpleUploadedFile(filename, content), "name": ""},
        **headers,
    )


def test_it_stores_a_valid_upload_and_shows_its_rows(owner_client, project, htmx_headers):
    response = upload(owner_client, project, GOOD, **htmx_headers)
    dataset = Dataset.objects.get()
    assert response["HX-Redirect"] == dataset.get_absolute_url()
    assert dataset.row_count == 2
    assert dataset.name == "data.jsonl"
    assert Path(dataset.file.path).read_bytes() == GOOD
    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert 'data-testid="row-count">2<' in page
    assert "2 + 2" in page


def test_it_rejects_a_malformed_line_with_its_number_and_stores_nothing(
    owner_client, project, htmx_headers
):
    bad = GOOD + b'{"instruction": "oops", "output": 7}\n{not json}\n'
    response = upload(owner_client, project, bad, **htmx_headers)
    body = response.content.decode()
    assert response.status_code == 200
    assert "line 3" in body and "output" in body and "expected a string" in body
    assert "line 4" in body
    assert Dataset.objects.count() == 0
    assert stored_files() == []


def test_it_rejects_an_empty_file(owner_client, project, htmx_headers):
    response = upload(owner_client, project, b"", **htmx_headers)
    assert "errorlist" in response.content.decode()
    assert Dataset.objects.count() == 0
    assert stored_files() == []


def test_it_rejects_a_file_over_the_size_limit(owner_client, project, settings, htmx_headers):
    settings.DATASET_MAX_UPLOAD_MB = 1
    response = upload(owner_client, project, GOOD * 20_000, **htmx_headers)
    assert "the limit is 1 MB" in response.content.decode()
    assert Dataset.objects.count() == 0
    assert stored_files() == []


def test_it_rejects_a_wrong_extension(owner_client, project, htmx_headers):
    response = upload(owner_client, project, GOOD, filename="data.xlsx", **htmx_headers)
    assert "Expected a .jsonl, .ndjson, .json, .csv or .txt file" in response.content.decode()
    assert Dataset.objects.count() == 0


def test_it_adds_the_sample_dataset_in_one_click(owner_client, project):
    response = owner_client.post(reverse("projects:dataset_sample", args=[project.pk]))
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert dataset.row_count >= 100
    assert '{"answer": ' in dataset.preview[0]["turns"][1]["content"]


def test_it_refuses_to_delete_a_dataset_a_run_uses(owner_client, project):
    run = make_run(project=project)
    response = owner_client.post(
        reverse("projects:dataset_delete", args=[project.pk, run.dataset.pk]), follow=True
    )
    assert "used by a run" in response.content.decode()
    assert Dataset.objects.filter(pk=run.dataset.pk).exists()


def test_it_deletes_an_unused_dataset_and_its_file(
    owner_client, project, django_capture_on_commit_callbacks
):
    dataset = make_dataset(project)
    path = Path(dataset.file.path)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("projects:dataset_delete", args=[project.pk, dataset.pk]))
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not path.exists()


# --- Ownership ---


def dataset_urls(dataset):
    p, d = dataset.project_id, dataset.pk
    return [
        ("get", reverse("projects:dataset", args=[p, d])),
        ("post", reverse("projects:dataset_delete", args=[p, d])),
        ("post", reverse("projects:dataset_upload", args=[p])),
        ("post", reverse("projects:dataset_sample", args=[p])),
    ]


def test_every_dataset_url_404s_for_another_user_and_changes_nothing(other_client, project):
    dataset = make_dataset(project)
    for method, url in dataset_urls(dataset):
        data = {"file": SimpleUploadedFile("x.jsonl", GOOD)} if "upload" in url else {}
        response = getattr(other_client, method)(url, data)
        assert response.status_code == 404, url
    assert list(Dataset.objects.values_list("pk", flat=True)) == [dataset.pk]


def test_every_dataset_url_sends_anonymous_users_to_login(client, project):
    dataset = make_dataset(project)
    for method, url in dataset_urls(dataset):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login"))
    assert Dataset.objects.count() == 1


def test_a_dataset_url_with_another_project_id_404s(owner_client, project, user):
    dataset = make_dataset(project)
    elsewhere = make_project(owner=user, name="Other")
    url = reverse("projects:dataset", args=[elsewhere.pk, dataset.pk])
    assert owner_client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
        (b'{"instruction": "a", "output": "x", "n": ' + b"9" * 10_000 + b"}\n", "line 1"),
        (b'{"instruction": "caf\xe9", "output": "x"}\n', "not valid UTF-8"),
        (b'{"instruction": "a\x00", "output": "x"}\n', "Invalid control character"),
        (b'{"foo": "a", "bar": "x"}\n', "fit none of the known shapes"),
        (b'{"instruction": "a"}\n', "missing: expected a string"),
        (b"\n\n   \n", "empty"),
    ],
)
def test_hostile_uploads_get_a_clear_error_and_leave_nothing(
    owner_client, project, htmx_headers, content, expected
):
    response = upload(owner_client, project, content, **htmx_headers)
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert Dataset.objects.count() == 0
    assert stored_files() == []


def _rows_for(fmt: str) -> tuple[bytes, bytes, bytes, bytes]:
    """(head, one row, separator, tail) of a file of 2 KB rows in ``fmt``."""
    import json

    row = {"instruction": "x" * 2000, "input": "", "output": "y" * 40}
    return {
        "jsonl": (b"", json.dumps(row).encode(), b"\n", b"\n"),
        "json": (b"[", json.dumps(row).encode(), b",\n", b"]"),
        "csv": (
            b"instruction,output\n",
            f"{row['instruction']},{row['output']}".encode(),
            b"\n",
            b"\n",
        ),
        "txt": (b"", b"x" * 2040, b"\n", b"\n"),
    }[fmt]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "txt"])
def test_a_300_mb_upload_in_pieces_never_sits_in_memory(project, tmp_path, fmt):
    """Pieces as the page sends them (8 MB); JSONL and text checked as they arrive,
    JSON and CSV checked whole by the worker's code once complete."""
    import tracemalloc

    from projects import services, uploads
    from projects.jobs.upload import check

    big = tmp_path / f"big.{fmt}"
    head, row, sep, tail = _rows_for(fmt)
    rows = 300 * 2**20 // len(row + sep) // 1000 * 1000
    with big.open("wb") as out:
        out.write(head)
        for i in range(rows // 1000):
            out.write(sep.join([row] * 1000))
            out.write(sep if i < rows // 1000 - 1 else tail)
    size = big.stat().st_size
    tracemalloc.start()
    upload = uploads.start(project.owner, project, "dataset", big.name, size, fmt, {})
    with big.open("rb") as fh:
        for offset in range(0, size, settings.UPLOAD_CHUNK_BYTES):
            length = min(settings.UPLOAD_CHUNK_BYTES, size - offset)
            upload = uploads.receive(upload, offset, fh, length)
    upload = services.finish_upload(upload)
    if upload.status == "queued":
        check(upload.pk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dataset = Dataset.objects.get()
    assert upload.streamed == (fmt in ("jsonl", "txt"))
    assert dataset.row_count == rows
    assert dataset.size_bytes > 290 * 2**20
    assert peak < 20 * 2**20, f"peak Python allocation {peak / 2**20:.0f} MB"


def test_it_refuses_an_upload_past_the_storage_quota(owner_client, project, user, htmx_headers):
    user.storage_quota_mb = 1
    user.save(update_fields=["storage_quota_mb"])
    upload(owner_client, project, GOOD, filename="small.jsonl", **htmx_headers)
    response = upload(owner_client, project, GOOD * 10_000, filename="big.jsonl", **htmx_headers)
    assert "storage quota" in response.content.decode()
    assert list(Dataset.objects.values_list("name", flat=True)) == ["small.jsonl"]
