"""Exports from the run page: a job on the CPU worker, verified, listed, downloaded, deleted."""

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.urls import reverse

from exports.models import Export
from exports.services import create_export
from projects.datasets import check_quota_for, delete_project
from slmlab.consumers import NOT_FOUND
from tests import websockets
from tests.exports.helpers import safetensors_dtypes
from tests.streams import content_of
from training.engine.data.records import DatasetError
from training.engine.export import llama
from training.models import Run

pytestmark = pytest.mark.django_db


def export_via_page(client, run, headers, django_capture_on_commit_callbacks, **fields):
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("exports:create", args=[run.pk]), fields, **headers)
    assert page.status_code == 200
    return page


def zip_names(response) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(content_of(response))).namelist())


def test_an_adapter_export_runs_on_the_cpu_queue_and_downloads_as_a_zip(
    owner_client, finished_run, htmx_headers, broker, run_queued, django_capture_on_commit_callbacks
):
    page = export_via_page(
        owner_client, finished_run, htmx_headers, django_capture_on_commit_callbacks, kind="adapter"
    )
    assert 'data-status="queued"' in page.content.decode()
    assert run_queued(settings.QUEUE_DEFAULT) == ["run_export"]
    export = Export.objects.get()
    assert export.status == Export.Status.DONE and export.size_bytes > 0
    names = zip_names(owner_client.get(reverse("exports:download", args=[export.pk])))
    assert "adapter_config.json" in names and "adapter_model.safetensors" in names
    run_page = owner_client.get(finished_run.get_absolute_url()).content.decode()
    assert 'data-testid="download-export"' in run_page
    assert "unquantized base weights" in run_page  # the run trained on a 4-bit base


def test_download_adapter_creates_the_adapter_export_once_then_downloads_it(
    owner_client, finished_run, htmx_headers, broker, run_queued, django_capture_on_commit_callbacks
):
    url = reverse("exports:adapter", args=[finished_run.pk])
    run_page = owner_client.get(finished_run.get_absolute_url()).content.decode()
    assert run_page.count('data-testid="download-adapter"') == 1  # in the export list only
    with django_capture_on_commit_callbacks(execute=True):
        first = owner_client.post(url, **htmx_headers).content.decode()
        owner_client.post(url, **htmx_headers)  # a second click waits for the same export
    assert 'data-testid="adapter-preparing"' in first and 'data-kind="adapter"' in first
    assert run_queued(settings.QUEUE_DEFAULT) == ["run_export"]
    export = Export.objects.get()
    assert export.status == Export.Status.DONE
    listed = owner_client.get(reverse("exports:list", args=[finished_run.pk])).content.decode()
    download = reverse("exports:download", args=[export.pk])
    assert f'href="{download}" data-testid="download-adapter"' in listed
    assert owner_client.post(url, **htmx_headers)["HX-Redirect"] == download
    assert owner_client.post(url)["Location"] == download
    names = zip_names(owner_client.get(download))
    assert "adapter_config.json" in names and "adapter_model.safetensors" in names
    assert Export.objects.count() == 1


def test_a_merged_export_is_verified_against_the_adapter_on_its_base(
    owner_client, finished_run, htmx_headers, broker, run_queued, django_capture_on_commit_callbacks
):
    export_via_page(
        owner_client,
        finished_run,
        htmx_headers,
        django_capture_on_commit_callbacks,
        kind="merged",
        dtype="float32",
    )
    run_queued(settings.QUEUE_DEFAULT)
    export = Export.objects.get()
    assert export.status == Export.Status.DONE, export.error
    assert export.verification["kind"] == "merged" and export.verification["passed"]
    names = zip_names(owner_client.get(reverse("exports:download", args=[export.pk])))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    assert safetensors_dtypes(export.folder / "model.safetensors") == {"F32"}
    listed = owner_client.get(reverse("exports:list", args=[finished_run.pk])).content.decode()
    assert "answered exactly like the adapter" in listed


@pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed")
@pytest.mark.slow  # measured 109 s on the shared 2 cores (merge, GGUF, llama.cpp)
def test_a_failed_verification_marks_the_export_failed_and_offers_nothing(
    owner_client, finished_run, broker, run_queued, django_capture_on_commit_callbacks
):
    # The tiny random model never writes its end-of-turn token: a chat with the GGUF's
    # template runs on to the token limit, which the verification refuses.
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(finished_run, "gguf", quant="f16")
    run_queued(settings.QUEUE_DEFAULT)
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert "end-of-turn token" in export.error
    assert export.verification["kind"] == "gguf"  # the figures measured are kept
    assert not export.folder.exists() and not export.temp_folder.exists()
    assert owner_client.get(reverse("exports:download", args=[export.pk])).status_code == 404
    assert owner_client.get(reverse("exports:gguf", args=[export.pk])).status_code == 404


def test_a_crash_mid_export_leaves_nothing_downloadable(
    owner_client, finished_run, django_capture_on_commit_callbacks
):
    export = create_export(finished_run, "merged", dtype="bfloat16", enqueue=False)
    assert export.claim()
    export.temp_folder.mkdir(parents=True)
    (export.temp_folder / "model.safetensors").write_bytes(b"half a file")  # then: kill -9
    assert not export.downloadable
    assert owner_client.get(reverse("exports:download", args=[export.pk])).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("exports:delete", args=[export.pk]))
    assert not export.temp_folder.exists()


def test_deleting_an_export_removes_its_files_and_frees_the_quota(
    owner_client, finished_run, user, broker, run_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(finished_run, "adapter")
    run_queued(settings.QUEUE_DEFAULT)
    export.refresh_from_db()
    user.storage_quota_mb = 1
    user.save()
    Export.objects.filter(pk=export.pk).update(size_bytes=2**20)
    with pytest.raises(DatasetError, match="your files use"):
        check_quota_for(user, 1000)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("exports:delete", args=[export.pk]))
    assert not Export.objects.exists() and not export.folder.exists()
    check_quota_for(user, 1000)


def test_an_owner_over_quota_cannot_start_an_export(owner_client, finished_run, user, htmx_headers):
    user.storage_quota_mb = 0
    user.save()
    page = owner_client.post(
        reverse("exports:create", args=[finished_run.pk]), {"kind": "adapter"}, **htmx_headers
    )
    assert "storage quota" in page.content.decode()
    assert not Export.objects.exists()


def test_exports_of_a_deleted_run_are_removed_with_it(
    finished_run, broker, run_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(finished_run, "adapter")
    run_queued(settings.QUEUE_DEFAULT)
    export.refresh_from_db()
    assert export.folder.is_dir()
    with django_capture_on_commit_callbacks(execute=True):
        delete_project(finished_run.project)
    assert not Export.objects.exists() and not export.folder.exists()


def test_another_user_gets_404_on_every_export_page_and_anonymous_goes_to_login(
    client, other_client, finished_run, broker, run_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(finished_run, "adapter")
    run_queued(settings.QUEUE_DEFAULT)
    gets = [
        reverse("exports:list", args=[finished_run.pk]),
        reverse("exports:download", args=[export.pk]),
        reverse("exports:gguf", args=[export.pk]),
    ]
    posts = [
        reverse("exports:create", args=[finished_run.pk]),
        reverse("exports:adapter", args=[finished_run.pk]),
        reverse("exports:delete", args=[export.pk]),
        reverse("exports:push", args=[export.pk]),
    ]
    for url in gets:
        assert other_client.get(url).status_code == 404, url
        assert client.get(url)["Location"].startswith(reverse("account_login")), url
    for url in posts:
        assert other_client.post(url, {"kind": "adapter", "repo_id": "a/b"}).status_code == 404
        assert client.post(url)["Location"].startswith(reverse("account_login")), url
    assert Export.objects.get().status == Export.Status.DONE
    # The Hub token pages are the user's own (no id to guess); anonymous goes to login.
    for url in (reverse("exports:hub_token"), reverse("exports:hub_token_delete")):
        assert client.post(url)["Location"].startswith(reverse("account_login")), url
    assert client.get(reverse("exports:hub_token"))["Location"].startswith(reverse("account_login"))


@pytest.mark.django_db(transaction=True)
def test_the_export_list_websocket_follows_the_owner_only(finished_run, other_user):
    path = f"/ws/runs/{finished_run.pk}/exports/"
    connected, _, first = websockets.connect(path, finished_run.owner)
    assert connected and 'id="export-list"' in first
    for intruder in (other_user, None):
        connected, code, _ = websockets.connect(path, intruder)
        assert not connected and code == NOT_FOUND

    # Created in a thread of its own: its push is sent at once (a transactional test), and
    # the browser tests keep an event loop in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        export = pool.submit(create_export, finished_run, "adapter", enqueue=False).result()
    export.claim()

    def progress():
        export.report(progress=0.5, stage="copying the adapter")
        from exports.events import publish

        publish(finished_run.pk)

    pushed = websockets.push_after_connect(path, finished_run.owner, progress)
    assert "copying the adapter" in pushed and 'value="50"' in pushed


def test_manage_py_export_exports_and_verifies_in_the_terminal(finished_run):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("export", run=finished_run.pk, kind="adapter", stdout=out)
    export = Export.objects.get()
    assert export.status == Export.Status.DONE and export.kind == "adapter"
    assert '"passed": true' in out.getvalue() and "verified:" in out.getvalue()


def test_a_timed_out_run_with_its_adapter_can_be_exported(finished_run):
    Run.objects.filter(pk=finished_run.pk).update(status=Run.Status.TIMED_OUT)
    finished_run.refresh_from_db()
    assert create_export(finished_run, "adapter", enqueue=False).status == Export.Status.QUEUED


def test_manage_py_export_says_why_a_run_cannot_be_exported(finished_run):
    from django.core.management import CommandError, call_command

    Run.objects.filter(pk=finished_run.pk).update(status=Run.Status.RUNNING)
    with pytest.raises(CommandError, match="Exports open when the run has completed"):
        call_command("export", run=finished_run.pk, kind="gguf", quant="q4_k_m")


def test_a_gguf_export_of_an_unsupported_architecture_is_refused_before_it_is_queued(
    owner_client, finished_run, htmx_headers, tmp_path, broker
):
    (tmp_path / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}')
    finished_run.base_model.path = str(tmp_path)
    finished_run.base_model.save()
    page = owner_client.post(
        reverse("exports:create", args=[finished_run.pk]),
        {"kind": "gguf", "quant": "q8_0"},
        **htmx_headers,
    )
    assert "supports the Llama architecture" in page.content.decode()
    assert not Export.objects.exists()
