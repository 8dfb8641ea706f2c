"""Uploads in every format, shape confirmation and mapping, templates and the token preview."""

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from projects import datasets
from projects.datasets import store_upload
from projects.events import render_check
from projects.forms import DatasetSettingsForm
from projects.jobs import check as check_job
from projects.jobs.preview import render_preview
from projects.models import BaseModel, Dataset, DatasetCheck
from tests.factories import make_base_model, make_dataset, make_project, make_run
from tests.uploads import send_in_pieces, start_url
from training.engine.data.records import PROGRESS_EVERY, DatasetError

pytestmark = pytest.mark.django_db

CHAT = json.dumps(
    {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "See you."},
        ]
    }
)


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Formats")


@pytest.fixture
def smol(bundled_model_dir):
    return make_base_model(path=str(bundled_model_dir))


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def upload(client, project, content: bytes, filename: str, **fields):
    return client.post(
        reverse("projects:dataset_upload", args=[project.pk]),
        {"file": SimpleUploadedFile(filename, content), "name": "", **fields},
        HTTP_HX_REQUEST="true",
    )


@pytest.mark.parametrize(
    ("filename", "content", "fmt", "shape", "rows"),
    [
        ("qa.csv", b'question,answer\nWhat is 2+2?,4\n"a, b",c\n', "csv", "prompt_completion", 2),
        ("rows.json", b'[{"instruction": "a", "output": "b"}]', "json", "alpaca", 1),
        ("chat.jsonl", CHAT.encode() + b"\n", "jsonl", "messages", 1),
        ("corpus.txt", b"one\ntwo\n\nthree\n", "txt", "text", 3),
    ],
)
def test_it_stores_every_format_with_its_recognised_shape(
    owner_client, project, filename, content, fmt, shape, rows
):
    response = upload(owner_client, project, content, filename)

    dataset = Dataset.objects.get()
    assert response["HX-Redirect"] == dataset.get_absolute_url()
    assert (dataset.file_format, dataset.shape, dataset.row_count) == (fmt, shape, rows)
    assert dataset.file.name.endswith(f".{fmt}")
    assert Path(dataset.file.path).read_bytes() == content
    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert f"read as {dataset.get_shape_display()}. Check the shape" in page


def test_a_csv_maps_its_columns_automatically_and_the_page_lists_them(owner_client, project):
    upload(owner_client, project, b"id,question,answer\n1,q,a\n", "qa.csv")

    dataset = Dataset.objects.get()
    assert dataset.mapping == {"prompt": "question", "completion": "answer"}
    assert dataset.columns == ["id", "question", "answer"]


def test_text_can_be_split_on_blank_lines(owner_client, project):
    upload(owner_client, project, b"a\nb\n\nc\n", "c.txt", text_split="blank_line")

    dataset = Dataset.objects.get()
    assert dataset.row_count == 2
    assert dataset.preview[0] == {"text": "a\nb"}


def test_unrecognised_columns_are_refused_with_their_names_then_mapped_by_hand(
    owner_client, project
):
    content = b'{"q": "What is 2+2?", "a": "4"}\n'

    refused = upload(owner_client, project, content, "odd.jsonl").content.decode()
    assert "&quot;q&quot;, &quot;a&quot;" in refused and "fit none of the known shapes" in refused
    assert Dataset.objects.count() == 0 and stored_files() == []

    upload(
        owner_client, project, content, "odd.jsonl", shape="prompt_completion",
        mapping="prompt=q, completion=a",
    )  # fmt: skip
    dataset = Dataset.objects.get()
    assert dataset.shape == "prompt_completion"
    assert dataset.preview[0]["turns"][1] == {"role": "assistant", "content": "4"}


def test_a_wrong_mapping_is_a_clear_error_and_stores_nothing(owner_client, project):
    bad_syntax = upload(owner_client, project, b'{"q": "x"}\n', "a.jsonl", mapping="prompt")
    wrong_column = upload(
        owner_client, project, b'{"q": "x", "a": "y"}\n', "b.jsonl",
        shape="prompt_completion", mapping="prompt=q, completion=answer",
    )  # fmt: skip

    assert "Expected field=column pairs" in bad_syntax.content.decode()
    assert "line 1: field &quot;answer&quot;: missing" in wrong_column.content.decode()
    assert Dataset.objects.count() == 0 and stored_files() == []


def test_an_upload_bigger_than_declared_is_cut_off_and_leaves_nothing(project, settings):
    settings.DATASET_MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.txt", b"line\n" * 300_000)
    big.size = 10  # a client that lies about the size

    with pytest.raises(DatasetError, match="the limit is 1 MB"):
        store_upload(project, big, "big")
    assert stored_files() == []


FUZZ = hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["a.jsonl", "a.json", "a.csv", "a.txt"]))
def test_any_upload_is_stored_whole_or_leaves_nothing_behind(project, content, filename):
    try:
        dataset = store_upload(project, SimpleUploadedFile(filename, content), "fuzz")
    except DatasetError as exc:
        assert exc.problems
        assert not Dataset.objects.exists()
        assert stored_files() == []
    else:
        assert Path(dataset.file.path).read_bytes() == content and dataset.row_count >= 1
        dataset.delete()
        Path(dataset.file.path).unlink()


# --- Settings: shape, mapping and template, re-validated before saving ---


def settings_url(dataset):
    return reverse("projects:dataset_settings", args=[dataset.project_id, dataset.pk])


def preview_url(dataset):
    return reverse("projects:dataset_preview", args=[dataset.project_id, dataset.pk])


@pytest.fixture
def save_settings(owner_client, htmx_headers, django_capture_on_commit_callbacks, run_queued):
    """POST new settings and let the CPU worker check and save them; returns the check."""

    def save(dataset, data):
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(settings_url(dataset), data, **htmx_headers)
        assert response.status_code == 200, response.content
        assert 'data-testid="settings-check"' in response.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            assert run_queued("default")[0] == "check_dataset"
        return DatasetCheck.objects.filter(dataset=dataset).latest("pk")

    return save


def test_saving_a_template_revalidates_every_row_and_keeps_the_old_settings_on_error(
    project, save_settings
):
    dataset = make_dataset(project)
    bad = {"shape": "alpaca", "template": "custom", "custom_template": "{question} {output}"}
    good = {**bad, "custom_template": "Q: {instruction}\nA: {output}"}

    refused = save_settings(dataset, bad)
    dataset.refresh_from_db()
    assert refused.status == "failed"
    assert "line 1: unknown placeholder {question}" in render_check(refused)
    assert dataset.template == "model"

    saved = save_settings(dataset, good)
    dataset.refresh_from_db()
    assert saved.status == "done" and saved.result == dataset
    assert f"{dataset.get_absolute_url()}?saved={saved.pk}" in render_check(saved)
    assert (dataset.template, dataset.custom_template) == ("custom", good["custom_template"])


def test_changing_the_shape_offers_that_shapes_columns(owner_client, project, htmx_headers):
    upload(owner_client, project, b"question,answer,topic\nq,a,t\n", "qa.csv")
    dataset = Dataset.objects.get()

    form = owner_client.get(settings_url(dataset), {"shape": "text"}, **htmx_headers)

    body = form.content.decode()
    assert 'name="map_text"' in body and 'name="map_prompt"' not in body
    assert '<option value="topic">topic</option>' in body
    dataset.refresh_from_db()
    assert dataset.shape == "prompt_completion"  # a GET saves nothing


def test_new_settings_for_a_dataset_a_run_used_make_a_new_version(project, save_settings):
    run = make_run(project=project)
    used = run.dataset

    check = save_settings(used, {"shape": "alpaca", "template": "alpaca"})

    used.refresh_from_db()
    new = Dataset.objects.get(lineage=used.lineage, version=2)
    assert check.result == new
    assert (used.template, new.template) == ("model", "alpaca")  # the run's stays as it was
    assert new.parent == used and new.row_count == used.row_count
    assert Path(new.file.path).read_bytes() == Path(used.file.path).read_bytes()
    assert run.dataset_id == used.pk


def test_the_new_version_says_it_was_saved_when_the_check_opens_it(
    owner_client, project, save_settings
):
    used = make_run(project=project).dataset
    check = save_settings(used, {"shape": "alpaca", "template": "alpaca"})

    page = owner_client.get(f"{check.result.get_absolute_url()}?saved={check.pk}")

    body = page.content.decode()
    assert 'data-testid="settings-saved"' in body
    assert "A run used version 1, so this is version 2" in body
    other = owner_client.get(f"{used.get_absolute_url()}?saved={check.pk}").content.decode()
    assert 'data-testid="settings-saved"' not in other  # only on what it saved


def test_saving_unchanged_settings_of_a_used_dataset_makes_no_version(
    owner_client, project, htmx_headers, broker
):
    run = make_run(project=project)
    data = {"shape": "alpaca", "template": "model"}  # what it has

    response = owner_client.post(settings_url(run.dataset), data, **htmx_headers)

    assert response["HX-Redirect"] == run.dataset.get_absolute_url()
    assert Dataset.objects.filter(lineage=run.dataset.lineage).count() == 1
    assert not DatasetCheck.objects.exists()


def test_new_settings_must_fit_the_validation_file_too(project, save_settings):
    dataset = make_dataset(project, rows=[{"instruction": "q", "output": "a", "topic": "t"}])
    dataset.validation_file.save("v.jsonl", ContentFile(b'{"instruction": "a", "output": "b"}\n'))
    dataset.validation_row_count = 1
    dataset.save()
    data = {"shape": "alpaca", "template": "custom", "custom_template": "{topic}: {output}"}

    refused = save_settings(dataset, data)

    assert "validation file line 1: unknown placeholder {topic}" in render_check(refused)
    dataset.refresh_from_db()
    assert dataset.template == "model"
    assert Dataset.objects.filter(lineage=dataset.lineage).count() == 1


def test_deleting_a_dataset_during_its_check_stops_the_check_quietly(project, monkeypatch, caplog):
    rows = [{"instruction": f"q{i}", "output": "a"} for i in range(PROGRESS_EVERY + 10)]
    dataset = make_dataset(project, rows=rows)
    check = DatasetCheck.objects.create(
        dataset=dataset, spec={**asdict(dataset.spec()), "template": "alpaca"}
    )
    report = DatasetCheck.report

    def owner_deletes_it_meanwhile(job, **progress):
        datasets.delete_dataset(Dataset.objects.get(pk=dataset.pk))
        return report(job, **progress)

    monkeypatch.setattr(DatasetCheck, "report", owner_deletes_it_meanwhile)
    check_job.check(check.pk)

    assert not Dataset.objects.exists() and not DatasetCheck.objects.exists()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_run_carries_the_datasets_settings_to_the_engine(project):
    from training.jobs.train import engine_config

    dataset = make_dataset(project)
    dataset.template, dataset.custom_template = "custom", "Q: {instruction} A: {output}"
    dataset.save()
    run = make_run(project=project, dataset=dataset)

    config = engine_config(run)

    assert (config.prompt_template, config.custom_template) == ("custom", dataset.custom_template)
    assert (config.dataset_format, config.dataset_shape) == ("jsonl", "alpaca")


# --- The live token preview ---


def preview_of(dataset, query=None, client=None) -> str:
    """The fragment the worker pushes for a preview the page asked for."""
    form = DatasetSettingsForm(query, dataset=dataset)
    assert query is None or form.is_valid(), form.errors
    spec = form.spec() if query else dataset.spec()
    model = (form.cleaned_data.get("model") if query else None) or BaseModel.objects.first()
    return render_preview(dataset, spec, model, "k1")


def test_the_page_asks_a_worker_for_the_preview_once_its_websocket_is_open(
    owner_client, project, smol, django_capture_on_commit_callbacks, broker
):
    dataset = make_dataset(project, rows=[{"instruction": "Say hi", "output": "hi there"}])

    page = owner_client.get(dataset.get_absolute_url()).content.decode()
    assert f'ws-connect="/ws/datasets/{dataset.pk}/"' in page
    assert 'hx-trigger="htmx:wsOpen from:closest [ws-connect]"' in page
    with django_capture_on_commit_callbacks(execute=True):
        placeholder = owner_client.get(
            preview_url(dataset), {"shape": "alpaca", "template": "alpaca", "model": smol.pk}
        )

    [message] = [json.loads(m) for m in list(broker.queues["interactive"].queue)]
    dataset_id, spec, model_id, key = message["args"]
    assert (dataset_id, spec["template"], model_id) == (dataset.pk, "alpaca", smol.pk)
    assert f'id="preview-{key}"' in placeholder.content.decode()


def test_the_preview_shows_trained_and_masked_tokens_with_the_eos(project, smol):
    dataset = make_dataset(project, rows=[{"instruction": "Say hi", "output": "hi there"}])

    pushed = preview_of(dataset)

    assert pushed.lstrip().startswith('<div id="preview-k1"')
    assert 'class="tok tok-trained" title="trained">hi</span>' in pushed
    assert 'class="tok tok-masked"' in pushed
    assert 'class="tok tok-trained tok-eos"' in pushed  # the answer's EOS is trained


def test_the_preview_follows_the_template_being_edited(owner_client, project, smol):
    dataset = make_dataset(project, rows=[{"instruction": "Say hi", "output": "hi there"}])
    query = {"shape": "alpaca", "template": "alpaca", "model": smol.pk}

    alpaca = preview_of(dataset, query)
    custom = owner_client.get(
        preview_url(dataset), {**query, "template": "custom", "custom_template": "{nope}{output}"}
    ).content.decode()

    assert "### Response:" in re.sub(r"<[^>]+>", "", alpaca)  # the text, without the spans
    assert 'data-testid="token-sample"' in alpaca
    assert "unknown placeholder {nope}" in preview_of(
        dataset, {**query, "template": "custom", "custom_template": "{nope}{output}"}
    )
    assert "preview-errors" in custom or "preview-" in custom
    dataset.refresh_from_db()
    assert dataset.template == "model"


def test_the_preview_explains_a_multi_turn_chat_with_a_single_turn_template(
    owner_client, project, smol
):
    upload(owner_client, project, CHAT.encode() + b"\n", "chat.jsonl")
    dataset = Dataset.objects.get()

    chat = preview_of(dataset)
    alpaca = preview_of(dataset, {"shape": "messages", "template": "alpaca", "model": smol.pk})

    assert chat.count("tok-eos") >= 2
    assert "the alpaca template needs one prompt and one answer" in alpaca


# --- Samples ---


@pytest.mark.parametrize(
    ("key", "fmt", "shape"),
    [("json-answer", "jsonl", "alpaca"), ("unit-chat", "jsonl", "messages"),
     ("tiny-stories", "txt", "text")],
)  # fmt: skip
def test_each_sample_loads_in_one_click(owner_client, project, key, fmt, shape):
    response = owner_client.post(
        reverse("projects:dataset_sample", args=[project.pk]), {"sample": key}
    )

    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert (dataset.file_format, dataset.shape) == (fmt, shape)
    assert dataset.row_count >= 100


def test_an_unknown_sample_is_a_404(owner_client, project):
    response = owner_client.post(
        reverse("projects:dataset_sample", args=[project.pk]), {"sample": "nope"}
    )

    assert response.status_code == 404
    assert not Dataset.objects.exists()


# --- Ownership of the new views ---


def new_urls(dataset):
    return [
        ("get", settings_url(dataset)),
        ("post", settings_url(dataset)),
        ("get", preview_url(dataset)),
    ]


def test_the_new_dataset_views_404_for_another_user_and_change_nothing(other_client, project):
    dataset = make_dataset(project)
    for method, url in new_urls(dataset):
        response = getattr(other_client, method)(url, {"shape": "text", "template": "alpaca"})
        assert response.status_code == 404, url
    dataset.refresh_from_db()
    assert (dataset.shape, dataset.template) == ("alpaca", "model")


def test_the_new_dataset_views_send_anonymous_users_to_login(client, project):
    dataset = make_dataset(project)
    for method, url in new_urls(dataset):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login"))


def test_the_owner_reaches_the_new_views(owner_client, project, htmx_headers):
    dataset = make_dataset(project)
    for method, url in new_urls(dataset):
        data = {"shape": "alpaca", "template": "model"}
        assert getattr(owner_client, method)(url, data, **htmx_headers).status_code == 200, url


def test_a_dataset_of_another_project_404s_on_the_new_views(owner_client, project, user):
    dataset = make_dataset(project)
    elsewhere = make_project(owner=user, name="Elsewhere")
    url = reverse("projects:dataset_preview", args=[elsewhere.pk, dataset.pk])
    assert owner_client.get(url).status_code == 404


def test_tmp_files_are_not_left_by_samples(owner_client, project):
    owner_client.post(
        reverse("projects:dataset_sample", args=[project.pk]), {"sample": "unit-chat"}
    )

    dataset = Dataset.objects.get()
    assert stored_files() == [Path(dataset.file.path)]


def test_a_mapping_without_a_shape_asks_for_the_shape(owner_client, project):
    response = upload(
        owner_client, project, b'{"q": "x", "a": "y"}\n', "a.jsonl", mapping="prompt=q"
    )

    assert "Choose the shape your column mapping is for." in response.content.decode()
    assert not Dataset.objects.exists()


def test_the_migration_turns_old_alpaca_previews_into_records(project):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("projects.migrations.0003_dataset_formats")
    dataset = make_dataset(project)
    Dataset.objects.filter(pk=dataset.pk).update(
        preview=[{"instruction": "Add", "input": "2 + 2", "output": "4"}]
    )

    migration.previews_as_records(apps, None)

    dataset.refresh_from_db()
    assert dataset.preview == [
        {
            "system": "",
            "turns": [
                {"role": "user", "content": "Add\n\n2 + 2"},
                {"role": "assistant", "content": "4"},
            ],
        }
    ]


def test_without_htmx_a_refused_setting_shows_the_whole_page_with_its_error(owner_client, project):
    dataset = make_dataset(project)

    response = owner_client.post(
        settings_url(dataset), {"shape": "alpaca", "template": "custom", "custom_template": "{x}"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="dataset-name"' in body and "{output} exactly once" in body
    assert not DatasetCheck.objects.exists()


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("u16.csv", "q,a\nx,y\n".encode("utf-16"), "the file is UTF-16"),
        (
            "bad.csv",
            b"question,answer\nx\n",
            "line 2: expected 2 columns (as in the header), got 1",
        ),
        ("bad.csv", b"question,answer\nx,\xff\n", "line 2: not valid UTF-8 (byte 3)"),
        ("nul.txt", b"fine\nnot\x00fine\n", "line 2: contains a NUL byte at column 4"),
        ("empty.txt", b"\n\n", "file is empty: expected at least one line of text"),
        ("deep.json", b"[" * 50_000 + b"]" * 50_000, "nested more than 64 levels deep"),
        ("obj.json", b'{"instruction": "a"}', "expected a JSON array of objects"),
        ("long.txt", b"ok\n" + b"z" * (50 * 2**20) + b"\n", "line 2: longer than the 8 MB limit"),
        (
            "field.csv",
            b'text\n"' + b"z" * (9 * 2**20) + b'"\n',
            "line 2: longer than the 8 MB limit",
        ),
    ],
)
def test_hostile_files_of_every_format_get_a_clear_error_and_leave_nothing(
    owner_client, project, filename, content, expected
):
    # Sent as the page sends them: in pieces, checked as they arrive or once complete.
    response = send_in_pieces(owner_client, start_url(project), content, filename)

    assert response.status_code == 422
    assert expected in response.content.decode()
    assert not Dataset.objects.exists() and stored_files() == []


def test_a_csv_field_over_the_csv_modules_default_limit_is_accepted(owner_client, project):
    long_answer = "y" * (200 * 1024)  # csv's default field limit is 128 KiB
    upload(owner_client, project, f"prompt,completion\nq,{long_answer}\n".encode(), "long.csv")

    dataset = Dataset.objects.get()
    assert dataset.row_count == 1
