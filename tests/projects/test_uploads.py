"""Dataset files sent in pieces: offsets, retries, checks as the rows arrive, the final
check in the request or on the worker, validation and replacement files, clean-up."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from projects import uploads
from projects.models import Dataset, Upload
from tests import websockets
from tests.factories import make_dataset, make_project, make_run, make_user
from tests.uploads import put_piece, send_in_pieces, start_url

pytestmark = pytest.mark.django_db
PIECE = 64 * 1024


@pytest.fixture(autouse=True)
def _small_pieces(settings):
    settings.UPLOAD_CHUNK_BYTES = PIECE


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Pieces")


def rows(n: int, start: int = 0) -> bytes:
    return b"".join(
        json.dumps({"instruction": f"say {i}", "input": "", "output": f"{i}" * 20}).encode() + b"\n"
        for i in range(start, start + n)
    )


def temporary_files() -> list[Path]:
    tmp = Path(django_settings.MEDIA_ROOT) / "tmp"
    return [p for p in tmp.iterdir() if p.is_file()] if tmp.exists() else []


def open_upload(client, project, content: bytes, filename="data.jsonl", **fields):
    started = client.post(
        start_url(project), {"filename": filename, "size": len(content), **fields}
    )
    assert started.status_code == 201, started.content
    return started.json()["url"]


def test_a_file_sent_in_pieces_is_stored_with_its_rows_checked_as_they_came(owner_client, project):
    content = rows(3000)  # several pieces
    assert len(content) > 3 * PIECE
    answer = send_in_pieces(owner_client, start_url(project), content, "data.jsonl", name="Mine")
    dataset = Dataset.objects.get()
    assert answer.status_code == 200
    assert answer.json() == {"redirect": dataset.get_absolute_url()}
    assert dataset.name == "Mine" and dataset.row_count == 3000 and dataset.shape == "alpaca"
    assert Path(dataset.file.path).read_bytes() == content
    assert len(dataset.preview) == 5 and dataset.preview[0]["turns"][0]["content"] == "say 0"
    upload = Upload.objects.get()
    assert upload.status == "done" and upload.result == dataset and upload.streamed
    assert upload.checked_bytes == len(content)
    assert temporary_files() == []
    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert "3000 rows, read as instruction / input / output" in page


def test_a_piece_sent_again_is_stored_once(owner_client, project):
    content = rows(800)
    url = open_upload(owner_client, project, content)
    first = put_piece(owner_client, url, 0, content[:PIECE])
    again = put_piece(owner_client, url, 0, content[:PIECE])  # its answer was lost
    assert first.json()["offset"] == again.json()["offset"] == PIECE
    offset = PIECE
    while offset < len(content):
        offset = put_piece(owner_client, url, offset, content[offset : offset + PIECE]).json()[
            "offset"
        ]
    owner_client.post(url + "finish/")
    assert Path(Dataset.objects.get().file.path).read_bytes() == content


def test_a_piece_at_another_offset_is_told_where_to_resume(owner_client, project):
    content = rows(3000)
    url = open_upload(owner_client, project, content)
    put_piece(owner_client, url, 0, content[:PIECE])
    skipped = put_piece(owner_client, url, 2 * PIECE, content[2 * PIECE : 3 * PIECE])
    assert skipped.status_code == 409 and skipped.json()["offset"] == PIECE
    # After a dropped connection or a reload the page asks, then goes on from there.
    state = owner_client.get(url).json()
    assert state == {
        "offset": PIECE,
        "size": len(content),
        "status": "receiving",
        "chunk_size": PIECE,
    }
    assert put_piece(owner_client, url, PIECE, content[PIECE : 2 * PIECE]).status_code == 200
    early = owner_client.post(url + "finish/")
    assert early.status_code == 409 and early.json()["offset"] == 2 * PIECE
    assert not Dataset.objects.exists()


def test_pieces_past_the_announced_size_or_over_the_piece_size_are_refused(owner_client, project):
    content = rows(10)
    url = open_upload(owner_client, project, content)
    assert put_piece(owner_client, url, 0, content + b"x").status_code == 400
    assert put_piece(owner_client, url, 0, b"x" * (PIECE + 1)).status_code == 413
    assert owner_client.get(url).json()["offset"] == 0


def test_a_bad_line_ends_the_upload_at_its_piece_with_the_line_number(owner_client, project):
    content = rows(10) + b'{"instruction": 7, "output": "x"}\n' + rows(3000)
    url = open_upload(owner_client, project, content)
    refused = put_piece(owner_client, url, 0, content[:PIECE])
    body = refused.content.decode()
    assert refused.status_code == 422
    assert 'id="upload-form"' in body and 'data-testid="upload-errors"' in body
    assert "line 11" in body and "instruction" in body
    assert Upload.objects.get().status == "failed"
    assert temporary_files() == [] and not Dataset.objects.exists()
    # Nothing more is taken; the page shows the same refusal.
    assert put_piece(owner_client, url, PIECE, content[PIECE : 2 * PIECE]).status_code == 422


def test_a_bad_line_in_a_later_piece_has_its_number_in_the_whole_file(owner_client, project):
    good = rows(2000)
    content = good + b"{oops\n" + rows(10)
    answer = send_in_pieces(owner_client, start_url(project), content, "data.jsonl")
    assert answer.status_code == 422
    assert "line 2001: not valid JSON" in answer.content.decode()
    assert Upload.objects.get().checked_bytes > 0  # earlier pieces had passed


def test_the_first_piece_recognises_the_shape_or_refuses_at_once(owner_client, project):
    pairs = b"".join(b'{"prompt": "q%d", "completion": "a"}\n' % i for i in range(3000))
    send_in_pieces(owner_client, start_url(project), pairs, "pairs.jsonl")
    assert Dataset.objects.get().shape == "prompt_completion"

    odd = b"".join(b'{"foo": "q%d", "bar": "a"}\n' % i for i in range(3000))
    url = open_upload(owner_client, project, odd, "odd.jsonl")
    refused = put_piece(owner_client, url, 0, odd[:PIECE])
    assert refused.status_code == 422
    assert "fit none of the known shapes" in refused.content.decode()


def test_a_chosen_shape_and_mapping_are_used_from_the_first_piece(owner_client, project):
    content = b"".join(b'{"q": "q%d", "a": "a"}\n' % i for i in range(2000))
    answer = send_in_pieces(
        owner_client,
        start_url(project),
        content,
        "qa.jsonl",
        shape="prompt_completion",
        mapping="prompt=q, completion=a",
    )
    assert answer.status_code == 200
    dataset = Dataset.objects.get()
    assert dataset.shape == "prompt_completion"
    assert dataset.mapping == {"prompt": "q", "completion": "a"}


@pytest.mark.parametrize(
    ("fields", "size", "filename", "expected"),
    [
        ({}, 0, "empty.jsonl", "The submitted file is empty."),
        ({}, 600 * 2**20, "huge.jsonl", "the limit is 500 MB"),
        ({}, 100, "data.exe", "Expected a .jsonl, .ndjson, .json, .csv or .txt file"),
        ({"mapping": "prompt=q"}, 100, "data.jsonl", "Choose the shape your column mapping is for"),
    ],
)
def test_the_form_is_checked_before_any_piece_is_sent(
    owner_client, project, fields, size, filename, expected
):
    answer = owner_client.post(start_url(project), {"filename": filename, "size": size, **fields})
    assert answer.status_code == 422
    assert expected in answer.content.decode()
    assert not Upload.objects.exists()


def test_the_storage_quota_counts_uploads_under_way(owner_client, project, user):
    user.storage_quota_mb = 1
    user.save(update_fields=["storage_quota_mb"])
    open_upload(owner_client, project, b"x" * 600_000)
    second = owner_client.post(start_url(project), {"filename": "b.jsonl", "size": 600_000})
    assert second.status_code == 422 and "storage quota" in second.content.decode()


def test_a_csv_is_checked_whole_once_complete_in_the_request(owner_client, project):
    content = b"question,answer\n" + b"".join(b"q%d,a%d\n" % (i, i) for i in range(9000))
    answer = send_in_pieces(owner_client, start_url(project), content, "qa.csv")
    assert answer.status_code == 200
    dataset = Dataset.objects.get()
    assert dataset.row_count == 9000 and dataset.file_format == "csv"
    assert not Upload.objects.get().streamed

    bad = b"question,answer\n" + b"".join(b"q%d,a%d\n" % (i, i) for i in range(9000)) + b"x\n"
    refused = send_in_pieces(owner_client, start_url(project), bad, "bad.csv")
    assert refused.status_code == 422
    assert "line 9002: expected 2 columns" in refused.content.decode()
    assert Dataset.objects.count() == 1 and temporary_files() == []


def in_a_worker_thread(function, *args):
    """Run ``function`` as a worker would, beside the test (its own database connection;
    and no event loop, which the browser tests leave running in this thread)."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def checked_on_worker(settings, run_queued):
    """Large files of formats checked whole go to the CPU worker: finish, then the worker."""
    settings.UPLOAD_CHECK_IN_REQUEST_MB = 0

    def send(client, project, content: bytes, filename: str):
        answer = send_in_pieces(client, start_url(project), content, filename)
        assert answer.status_code == 202, answer.content
        assert 'ws-connect="/ws/uploads/' in answer.content.decode()
        upload = Upload.objects.latest("pk")
        assert upload.status == "queued"
        assert in_a_worker_thread(run_queued, "default") == ["check_upload"]
        upload.refresh_from_db()
        return answer, upload

    return send


@pytest.mark.django_db(transaction=True)
def test_a_large_csv_is_checked_and_stored_by_the_worker(
    owner_client, project, broker, checked_on_worker
):
    content = b"question,answer\n" + b"".join(b"q%d,a%d\n" % (i, i) for i in range(9000))
    _, upload = checked_on_worker(owner_client, project, content, "qa.csv")
    dataset = Dataset.objects.get()
    assert upload.status == "done" and upload.result == dataset and dataset.row_count == 9000
    assert temporary_files() == []
    # What the page following it is sent: where to go.
    connected, _, state = websockets.connect(f"/ws/uploads/{upload.pk}/", upload.owner)
    assert connected and 'data-status="done"' in state
    assert f'href="{dataset.get_absolute_url()}" data-go' in state
    # A second delivery of the message does nothing.
    from projects.jobs.upload import check

    in_a_worker_thread(check, upload.pk)
    assert Dataset.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_bad_large_csv_fails_on_the_worker_with_its_problems(
    owner_client, project, broker, checked_on_worker
):
    content = b"question,answer\n" + b"".join(b"q%d,a%d\n" % (i, i) for i in range(9000)) + b"x\n"
    _, upload = checked_on_worker(owner_client, project, content, "qa.csv")
    assert upload.status == "failed"
    assert upload.problems == ["line 9002: expected 2 columns (as in the header), got 1"]
    assert not Dataset.objects.exists() and temporary_files() == []
    connected, _, state = websockets.connect(f"/ws/uploads/{upload.pk}/", upload.owner)
    assert connected and 'data-testid="upload-errors"' in state and "line 9002" in state


@pytest.mark.django_db(transaction=True)
def test_the_worker_pushes_progress_to_the_page_following_the_upload(owner_client, project):
    upload = Upload.objects.create(
        owner=project.owner,
        project=project,
        filename="qa.csv",
        file_format="csv",
        size=10,
        received=10,
        status="running",
    )

    def progress():
        from projects import events

        Upload.objects.filter(pk=upload.pk).update(row_count=5000)
        events.publish_upload(upload.pk)

    pushed = websockets.push_after_connect(f"/ws/uploads/{upload.pk}/", upload.owner, progress)
    assert 'data-testid="upload-rows">5,000<' in pushed


def test_finishing_twice_stores_once(owner_client, project):
    content = rows(100)
    url = open_upload(owner_client, project, content)
    put_piece(owner_client, url, 0, content)
    first = owner_client.post(url + "finish/")
    again = owner_client.post(url + "finish/")  # the first answer was lost
    assert first.json() == again.json()
    assert Dataset.objects.count() == 1


def test_a_validation_file_in_pieces_is_read_like_the_training_file(owner_client, project):
    dataset = make_dataset(project)
    url = start_url(project, "validation", dataset)
    answer = send_in_pieces(owner_client, url, rows(2000), "val.jsonl", val_percent=0, split_seed=0)
    assert answer.status_code == 200
    dataset.refresh_from_db()
    assert dataset.validation_row_count == 2000 and dataset.has_validation_file
    assert answer.json() == {"redirect": dataset.get_absolute_url()}

    bad = rows(2000) + b'{"prompt": "other shape"}\n'
    refused = send_in_pieces(owner_client, url, bad, "val.jsonl", val_percent=0, split_seed=0)
    assert refused.status_code == 422
    body = refused.content.decode()
    assert 'id="split-form"' in body and "line 2001" in body
    dataset.refresh_from_db()
    assert dataset.validation_row_count == 2000


def test_a_validation_file_must_be_in_the_datasets_format(owner_client, project):
    dataset = make_dataset(project)
    answer = owner_client.post(
        start_url(project, "validation", dataset),
        {"filename": "val.csv", "size": 100, "val_percent": 0, "split_seed": 0},
    )
    assert answer.status_code == 422
    assert "Expected a .jsonl or .ndjson file" in answer.content.decode()


def test_a_replacement_in_pieces_replaces_rows_or_makes_a_version(owner_client, project):
    dataset = make_dataset(project)
    url = start_url(project, "replacement", dataset)
    answer = send_in_pieces(owner_client, url, rows(1500), "new.jsonl")
    dataset.refresh_from_db()
    assert answer.json() == {"redirect": dataset.get_absolute_url()}
    assert dataset.row_count == 1500 and Dataset.objects.count() == 1

    make_run(project, dataset=dataset)
    answer = send_in_pieces(owner_client, url, rows(1200), "newer.jsonl")
    newer = Dataset.objects.get(version=2)
    assert answer.json() == {"redirect": newer.get_absolute_url()}
    assert newer.row_count == 1200 and newer.parent == dataset
    dataset.refresh_from_db()
    assert dataset.row_count == 1500


@pytest.mark.django_db(transaction=True)
def test_every_upload_url_404s_for_another_user_and_changes_nothing(
    owner_client, other_client, project
):
    dataset = make_dataset(project)
    content = rows(100)
    url = open_upload(owner_client, project, content)
    for start in (
        start_url(project),
        start_url(project, "validation", dataset),
        start_url(project, "replacement", dataset),
    ):
        answer = other_client.post(start, {"filename": "x.jsonl", "size": 10})
        assert answer.status_code == 404
    assert other_client.get(url).status_code == 404
    assert put_piece(other_client, url, 0, content).status_code == 404
    assert other_client.post(url + "finish/").status_code == 404
    assert Upload.objects.get().received == 0
    connected, code, _ = websockets.connect(
        f"/ws/uploads/{Upload.objects.get().pk}/", make_user("third@example.com")
    )
    assert not connected and code == 4404


def test_every_upload_url_sends_anonymous_visitors_to_log_in(client, owner_client, project):
    url = open_upload(owner_client, project, rows(10))
    login = reverse("account_login")
    started = client.post(start_url(project), {"filename": "x.jsonl", "size": 1})
    assert started["Location"].startswith(login)
    assert client.get(url)["Location"].startswith(login)
    assert put_piece(client, url, 0, b"x")["Location"].startswith(login)
    assert client.post(url + "finish/")["Location"].startswith(login)


def test_an_upload_url_with_another_project_id_404s(owner_client, project, user):
    other_project = make_project(owner=user, name="Other")
    url = open_upload(owner_client, project, rows(10))
    upload = Upload.objects.get()
    wrong = reverse("projects:upload", args=[other_project.pk, upload.pk])
    assert url != wrong and owner_client.get(wrong).status_code == 404


def test_abandoned_uploads_and_stray_files_go_when_an_upload_starts(owner_client, project):
    old_url = open_upload(owner_client, project, rows(800))
    put_piece(owner_client, old_url, 0, rows(800)[:PIECE])
    old = Upload.objects.get()
    Upload.objects.filter(pk=old.pk).update(updated=timezone.now() - timedelta(hours=25))
    stray = Path(django_settings.MEDIA_ROOT) / "tmp" / "tmpcrashed.jsonl"
    stray.write_bytes(b"left by a crash")
    day_ago = time.time() - 25 * 3600
    os.utime(stray, (day_ago, day_ago))

    open_upload(owner_client, project, rows(10))

    assert not Upload.objects.filter(pk=old.pk).exists()
    assert not old.path.exists() and not stray.exists()
    assert Upload.objects.count() == 1 and Upload.objects.get().path.exists()
    assert owner_client.get(old_url).status_code == 404


def test_a_recent_upload_survives_the_clean_up():
    user = make_user()
    project = make_project(owner=user)
    upload = uploads.start(user, project, "dataset", "a.jsonl", 10, "jsonl", {})
    assert uploads.clean_abandoned() == 0
    assert upload.path.exists()
    later = timezone.now() + timedelta(hours=django_settings.UPLOAD_ABANDONED_HOURS + 1)
    assert uploads.clean_abandoned(now=later) == 1
    assert not upload.path.exists()


def test_without_javascript_a_small_file_still_goes_in_one_request(owner_client, project, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    one_request = reverse("projects:dataset_upload", args=[project.pk])
    answer = owner_client.post(one_request, {"file": SimpleUploadedFile("a.jsonl", rows(10))})
    assert answer.status_code == 302 and Dataset.objects.count() == 1

    settings.UPLOAD_SINGLE_REQUEST_MB = 1
    big = SimpleUploadedFile("b.jsonl", rows(20_000))
    refused = owner_client.post(one_request, {"file": big})
    assert "without JavaScript files up to 1 MB can be sent" in refused.content.decode()
    assert Dataset.objects.count() == 1 and temporary_files() == []


def test_deleting_the_project_or_dataset_removes_uploads_on_their_way(
    owner_client, project, django_capture_on_commit_callbacks
):
    from projects import datasets

    dataset = make_dataset(project)
    to_project = open_upload(owner_client, project, rows(800))
    put_piece(owner_client, to_project, 0, rows(800)[:PIECE])
    to_dataset = owner_client.post(
        start_url(project, "replacement", dataset), {"filename": "new.jsonl", "size": 10}
    )
    assert to_dataset.status_code == 201 and len(temporary_files()) == 2

    with django_capture_on_commit_callbacks(execute=True):
        datasets.delete_dataset(dataset)
    assert len(temporary_files()) == 1 and Upload.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        datasets.delete_project(project)
    assert temporary_files() == [] and not Upload.objects.exists()


def test_operators_see_uploads_in_the_admin(client, owner_client, project):
    open_upload(owner_client, project, rows(10), "visible.jsonl")
    client.force_login(make_user("op@example.com", is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:projects_upload_changelist"))
    assert page.status_code == 200 and "visible.jsonl" in page.content.decode()
