"""Hub downloads: operators only, on a worker, with progress; offline fails fast and clearly.

The downloads themselves run against a fake Hub on 127.0.0.1 (tests/fakehub.py).
"""

import time
from pathlib import Path

import dramatiq
import huggingface_hub.constants
import pytest
from django.urls import reverse
from django.utils.html import escape

from projects.jobs.download import run_download
from projects.models import BaseModel, ModelDownload
from tests.factories import make_user
from training.engine.models.folders import folder_bytes
from training.engine.models.store import load_model_and_tokenizer

pytestmark = pytest.mark.django_db
KEY = "smollm2-360m"  # a curated model that is not in the store


@pytest.fixture
def operator_client(client):
    client.force_login(make_user(is_staff=True))
    return client


def start(operator_client, django_capture_on_commit_callbacks) -> ModelDownload:
    broker = dramatiq.get_broker()
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            reverse("model_download"), {"key": KEY}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    assert broker.queues["default"].qsize() == 1  # sent to a worker, not run in the request
    return ModelDownload.objects.get()


def test_students_cannot_download_models(owner_client, client):
    page = owner_client.get(reverse("catalog")).content.decode()
    assert 'data-testid="download-model"' not in page
    assert owner_client.post(reverse("model_download"), {"key": KEY}).status_code == 404
    anonymous = client.post(reverse("model_download"), {"key": KEY})
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert not ModelDownload.objects.exists()


def test_operators_see_a_download_button_for_models_not_in_the_store(operator_client):
    page = operator_client.get(reverse("catalog")).content.decode()
    assert f'name="key" value="{KEY}"' in page
    assert operator_client.post(reverse("model_download"), {"key": "nope"}).status_code == 404


def test_offline_the_download_fails_at_once_with_what_to_do(
    operator_client, django_capture_on_commit_callbacks
):
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # the test settings are offline
    download = start(operator_client, django_capture_on_commit_callbacks)
    assert (download.status, download.repo_id) == ("queued", "HuggingFaceTB/SmolLM2-360M-Instruct")

    run_download(download.pk)  # what the worker's actor does
    download.refresh_from_db()
    assert download.status == "failed"
    assert "this lab is offline (HF_HUB_OFFLINE is set)" in download.error
    assert "manage.py import_model <folder>" in download.error
    assert not BaseModel.objects.filter(name=download.name).exists()

    fragment = operator_client.get(reverse("model_download_status", args=[download.pk]))
    assert 'data-testid="download-error"' in fragment.content.decode()
    assert "hx-trigger" not in fragment.content.decode()  # no more polling


def test_an_unreachable_hub_fails_fast_and_leaves_nothing(
    operator_client, django_capture_on_commit_callbacks, monkeypatch, settings, tmp_path
):
    settings.MODEL_STORE_DIR = tmp_path
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    download = start(operator_client, django_capture_on_commit_callbacks)

    began = time.monotonic()
    run_download(download.pk)
    assert time.monotonic() - began < 15
    download.refresh_from_db()
    assert download.status == "failed"
    assert download.error.startswith("cannot reach the Hugging Face Hub (")
    assert list(tmp_path.iterdir()) == []


def test_a_download_under_way_is_reused_and_shown_with_progress(
    operator_client, django_capture_on_commit_callbacks
):
    download = start(operator_client, django_capture_on_commit_callbacks)
    ModelDownload.objects.filter(pk=download.pk).update(
        status="running", bytes_done=250_000_000, bytes_total=1_000_000_000
    )
    again = operator_client.post(reverse("model_download"), {"key": KEY}, HTTP_HX_REQUEST="true")
    assert ModelDownload.objects.count() == 1
    assert 'value="25"' in again.content.decode()

    fragment = operator_client.get(reverse("model_download_status", args=[download.pk]))
    html = fragment.content.decode()
    assert 'hx-trigger="every 1s"' in html and "238.4\xa0MB / 953.7\xa0MB" in html
    assert run_download(download.pk) is None  # already claimed: a duplicate does nothing
    assert ModelDownload.objects.get().status == "running"


def test_a_students_view_of_a_download_is_404(owner_client, operator_client):
    from django.test import Client

    download = ModelDownload.objects.create(
        requested_by=make_user(is_staff=True), repo_id="a/b", name="b"
    )
    url = reverse("model_download_status", args=[download.pk])
    assert owner_client.get(url).status_code == 404
    assert Client().get(url).status_code == 302
    assert operator_client.get(url).status_code == 200


def test_progress_counts_partial_files(tmp_path):
    (tmp_path / ".cache" / "download").mkdir(parents=True)
    (tmp_path / ".cache" / "download" / "model.safetensors.incomplete").write_bytes(b"x" * 700)
    (tmp_path / "config.json").write_bytes(b"y" * 300)
    assert folder_bytes(tmp_path) == 1000


def test_a_hub_download_through_the_worker_registers_a_model_that_loads(
    operator_client,
    django_capture_on_commit_callbacks,
    fake_hub,
    tiny_hub_model,
    settings,
    tmp_path,
):
    settings.MODEL_STORE_DIR = store = tmp_path / "store"
    repo = fake_hub.add_folder("HuggingFaceTB/SmolLM2-360M-Instruct", tiny_hub_model)
    download = start(operator_client, django_capture_on_commit_callbacks)

    run_download(download.pk)
    download.refresh_from_db()
    assert download.status == "done", download.error
    model = download.base_model
    assert (model.name, model.source, model.licence) == (download.name, "hub", "apache-2.0")
    folder = Path(model.path)
    assert [p.name for p in store.iterdir()] == [folder.name] == [download.name]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not {"pytorch_model.bin", "modeling_tiny.py", "README.md", "original", ".cache"} & names
    assert not {"pytorch_model.bin", "modeling_tiny.py"} & set(fake_hub.fetched("HEAD"))
    fetched_bytes = sum(len(repo.files[name]) for name in names)
    assert download.bytes_done == download.bytes_total == fetched_bytes == model.disk_bytes
    assert model.context_length == 256

    loaded, tokenizer = load_model_and_tokenizer(folder, quantization="none", device="cpu")
    assert model.parameters == loaded.num_parameters()
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert loaded(ids).logits.shape == (1, ids.shape[1], len(tokenizer))

    page = operator_client.get(reverse("catalog")).content.decode()
    assert f'name="key" value="{KEY}"' not in page  # in the store now: no download button


# Committed for real: the download outlives the progress thread's first tick (the client
# waits a second before retrying), and that thread writes through its own connection.
@pytest.mark.django_db(transaction=True)
def test_a_hub_failing_mid_download_leaves_nothing_and_says_so(
    operator_client,
    django_capture_on_commit_callbacks,
    fake_hub,
    tiny_hub_model,
    settings,
    tmp_path,
):
    settings.MODEL_STORE_DIR = store = tmp_path / "store"
    store.mkdir()
    fake_hub.add_folder("HuggingFaceTB/SmolLM2-360M-Instruct", tiny_hub_model)
    fake_hub.fail("model.safetensors", "cut")
    download = start(operator_client, django_capture_on_commit_callbacks)

    run_download(download.pk)
    download.refresh_from_db()
    assert download.status == "failed" and download.finished is not None
    assert download.error.startswith("downloading model.safetensors from the Hugging Face Hub")
    assert download.error.endswith("nothing was kept, try again later")
    assert not BaseModel.objects.filter(name=download.name).exists()
    assert list(store.iterdir()) == []  # no model folder, no temporary folder
    assert not list((tmp_path / "hf-cache").rglob("*.incomplete"))

    fragment = operator_client.get(reverse("model_download_status", args=[download.pk]))
    assert escape(download.error) in fragment.content.decode()
    page = operator_client.get(reverse("catalog")).content.decode()
    assert f'name="key" value="{KEY}"' in page and "Try again" in page


@pytest.mark.django_db(transaction=True)
def test_a_hub_model_that_cannot_be_registered_leaves_no_folder_behind(
    operator_client,
    django_capture_on_commit_callbacks,
    fake_hub,
    tiny_hub_model,
    settings,
    tmp_path,
):
    from django.db import connection

    settings.MODEL_STORE_DIR = store = tmp_path / "store"
    store.mkdir()
    fake_hub.add_folder("HuggingFaceTB/SmolLM2-360M-Instruct", tiny_hub_model)
    download = start(operator_client, django_capture_on_commit_callbacks)

    def import_the_same_name_meanwhile() -> None:  # e.g. manage.py import_model, elsewhere
        BaseModel.objects.create(name=download.name, path="/elsewhere", source="local")
        connection.close()  # the server thread's own connection

    fake_hub.on_fetch("model.safetensors", import_the_same_name_meanwhile)

    run_download(download.pk)
    download.refresh_from_db()
    assert download.status == "failed"
    assert download.error == f"a model called {download.name!r} is already in the store"
    assert BaseModel.objects.get(name=download.name).path == "/elsewhere"
    assert list(store.iterdir()) == []  # the downloaded folder went with the failed download
