"""The page sends dataset files in pieces: it survives dropped connections and a reload,
and the dataset page's validation and replacement files go the same way."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from projects.models import Dataset, Upload
from tests.factories import PASSWORD, make_dataset, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PIECE = 64 * 1024


@pytest.fixture(autouse=True)
def _small_pieces(settings):
    settings.UPLOAD_CHUNK_BYTES = PIECE  # the live server runs in this process


def log_in(page, user):
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/projects/$"))


def write_rows(path, n: int):
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"instruction": f"say {i}", "output": f"{i}" * 30}) + "\n")
    return path


def pieces_sent(page) -> list[int]:
    offsets: list[int] = []
    page.on(
        "request",
        lambda r: offsets.append(int(r.headers["upload-offset"])) if r.method == "PUT" else None,
    )
    return offsets


def test_a_dropped_connection_resumes_where_the_server_stopped(page, tmp_path):
    user = make_user("flaky@example.com")
    project = make_project(owner=user, name="Flaky")
    data = write_rows(tmp_path / "flaky.jsonl", 5000)
    log_in(page, user)
    page.goto(project.get_absolute_url())
    dropped = []

    def drop_the_third_piece_once(route):
        third = route.request.headers.get("upload-offset") == str(2 * PIECE)
        if route.request.method == "PUT" and third and not dropped:
            dropped.append(True)
            return route.abort("connectionreset")
        return route.continue_()

    page.route(re.compile(r"/uploads/\d+/$"), drop_the_third_piece_once)
    sent = pieces_sent(page)
    page.locator("#upload-form input[type=file]").set_input_files(str(data))
    page.get_by_role("button", name="Upload dataset").click()

    expect(page.get_by_test_id("row-count")).to_have_text("5,000", timeout=30_000)
    assert dropped and sent.count(2 * PIECE) == 2  # sent again after the drop
    dataset = Dataset.objects.get()
    assert dataset.size_bytes == data.stat().st_size
    assert Path(dataset.file.path).read_bytes() == data.read_bytes()


def test_the_same_file_chosen_after_a_reload_resumes_at_the_servers_offset(page, tmp_path):
    user = make_user("reload@example.com")
    project = make_project(owner=user, name="Reload")
    data = write_rows(tmp_path / "big.jsonl", 5000)
    log_in(page, user)
    page.goto(project.get_absolute_url())

    def only_the_first_piece(route):
        if route.request.method == "PUT" and route.request.headers["upload-offset"] != "0":
            return route.abort("internetdisconnected")
        return route.continue_()

    page.route(re.compile(r"/uploads/\d+/$"), only_the_first_piece)
    page.locator("#upload-form input[type=file]").set_input_files(str(data))
    page.get_by_role("button", name="Upload dataset").click()
    for _ in range(100):
        upload = Upload.objects.first()
        if upload is not None and upload.received == PIECE:
            break
        page.wait_for_timeout(100)
    assert Upload.objects.get().received == PIECE

    page.reload()  # the tab was closed, say, and opened again
    page.unroute(re.compile(r"/uploads/\d+/$"))
    assert Upload.objects.get().received == PIECE
    sent = pieces_sent(page)
    page.locator("#upload-form input[type=file]").set_input_files(str(data))
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.get_by_test_id("row-count")).to_have_text("5,000", timeout=30_000)
    assert sent[0] == PIECE and 0 not in sent
    assert Upload.objects.count() == 1
    assert Path(Dataset.objects.get().file.path).read_bytes() == data.read_bytes()


def test_a_bad_line_far_into_the_file_is_shown_before_the_rest_is_sent(page, tmp_path):
    user = make_user("early@example.com")
    project = make_project(owner=user, name="Early")
    data = tmp_path / "bad.jsonl"
    write_rows(data, 100)
    with data.open("a") as out:
        out.write('{"instruction": 5}\n')
    rest = write_rows(tmp_path / "rest.jsonl", 5000).read_text()
    with data.open("a") as out:
        out.write(rest)
    log_in(page, user)
    page.goto(project.get_absolute_url())
    sent = pieces_sent(page)
    page.locator("#upload-form input[type=file]").set_input_files(str(data))
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.get_by_test_id("upload-errors")).to_contain_text("line 101")
    assert len(sent) == 1  # the first piece held it: nothing more was sent
    assert not Dataset.objects.exists()
    # The form is back, ready for another file.
    expect(page.locator("#upload-form input[type=file]")).to_be_visible()


def test_validation_and_replacement_files_go_up_in_pieces(page, tmp_path):
    user = make_user("versions@example.com")
    project = make_project(owner=user, name="Versions")
    dataset = make_dataset(project)
    log_in(page, user)
    page.goto(dataset.get_absolute_url())
    sent = pieces_sent(page)

    page.get_by_text("Change the split").click()
    validation = write_rows(tmp_path / "val.jsonl", 3000)
    page.locator("#split-form input[type=file]").set_input_files(str(validation))
    page.get_by_role("button", name="Save split").click()
    expect(page.get_by_test_id("split-summary")).to_contain_text(
        "3,000 validation rows from a separate file"
    )
    assert len(sent) > 1

    page.get_by_text("Replace the file").click()
    replacement = write_rows(tmp_path / "new.jsonl", 4000)
    page.locator("#replace-form input[type=file]").set_input_files(str(replacement))
    page.get_by_role("button", name="Upload replacement").click()
    expect(page.get_by_test_id("row-count")).to_have_text("4,000")
    dataset.refresh_from_db()
    assert dataset.row_count == 4000 and dataset.validation_row_count == 3000
