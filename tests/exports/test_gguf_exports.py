"""GGUF exports through the real export job: a worker without llama.cpp refuses them with
the reason; the tiny pretrained model's F16 and Q4_0 are verified in llama.cpp and the
export list shows the figures; ``manage.py export --kind gguf`` does the same."""

import io
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from exports.models import Export
from exports.services import create_export
from tests.exports.test_exports import export_via_page
from tests.pretrained import pretrained_run
from training.engine.export import llama

pytestmark = pytest.mark.django_db
needs_llama = pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed")


def test_a_worker_without_llama_cpp_refuses_a_gguf_export_with_the_reason(
    owner_client,
    finished_run,
    htmx_headers,
    broker,
    run_queued,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    # As on a worker without the gguf-verify extra: the package cannot be found or imported
    # (find_spec answers None for a None entry in sys.modules, and the import fails).
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    assert not llama.available()
    export_via_page(
        owner_client,
        finished_run,
        htmx_headers,
        django_capture_on_commit_callbacks,
        kind="gguf",
        quant="q8_0",
    )
    assert run_queued(settings.QUEUE_DEFAULT) == ["run_export"]
    export = Export.objects.get()
    assert export.status == Export.Status.FAILED
    assert "llama-cpp-python) is not installed on the worker" in export.error
    assert "gguf-verify extra" in export.error
    assert not export.folder.exists() and not export.temp_folder.exists()
    assert export.size_bytes == 0
    for name in ("exports:download", "exports:gguf"):
        assert owner_client.get(reverse(name, args=[export.pk])).status_code == 404
    listed = owner_client.get(reverse("exports:list", args=[finished_run.pk])).content.decode()
    assert 'data-testid="export-error"' in listed and "is not installed on the worker" in listed
    assert 'data-testid="download-export"' not in listed
    assert 'data-testid="download-gguf"' not in listed


def gguf_row(listed: str, export: Export) -> str:
    """The export list's row of ``export`` (up to the next export's row)."""
    rows = listed.split('<tr data-testid="export" ')[1:]
    return next(row for row in rows if row.startswith(f'data-export="{export.pk}"'))


@needs_llama
def test_f16_and_q4_0_gguf_exports_are_verified_in_llama_cpp_and_the_list_shows_the_figures(
    owner_client, user, broker, run_queued, django_capture_on_commit_callbacks
):
    run = pretrained_run(user)
    with django_capture_on_commit_callbacks(execute=True):
        f16 = create_export(run, "gguf", quant="f16")
        q4 = create_export(run, "gguf", quant="q4_0")
    assert run_queued(settings.QUEUE_DEFAULT) == ["run_export", "run_export"]
    f16.refresh_from_db()
    q4.refresh_from_db()
    assert f16.status == q4.status == Export.Status.DONE, (f16.error, q4.error)
    # F16 answers like the merged model for (at least) the first 16 tokens of every prompt.
    report = f16.verification
    assert report["gguf_type"] == "f16" and report["passed"]
    assert all(p["equal"] and p["required_tokens"] == 16 for p in report["prompts"])
    assert all(
        p["agreeing_tokens"] >= 16 or p["near_tie_at"] is not None for p in report["prompts"]
    )
    # Q4_0 is not held to equal answers: its agreement and KL are measured and reported.
    quant = q4.verification
    assert quant["gguf_type"] == "q4_0" and quant["passed"]
    assert 0.6 <= quant["token_agreement"] <= 1 and 0 <= quant["mean_kl"] <= 0.5
    assert quant["mean_kl"] > report["mean_kl"]  # 4-bit weights move the distributions more

    listed = owner_client.get(reverse("exports:list", args=[run.pk])).content.decode()
    for export in (f16, q4):
        row = gguf_row(listed, export)
        v = export.verification
        assert f"next-token agreement {v['token_agreement']:.3f}, mean KL {v['mean_kl']:.4f}" in row
        for p in v["prompts"]:
            assert f"<td>{p['agreeing_tokens']}/{p['required_tokens']}</td>" in row
        # A model pretrained in the lab was never taught to end a turn: said so, not required.
        assert "stop at end of turn is not required of a model pretrained without chats" in row
        assert 'data-testid="download-gguf"' in row


def test_the_list_words_a_chat_that_stops_and_a_merged_model_that_parted_at_a_near_tie(
    owner_client, finished_run
):
    # Reports as the verification stores them (the tiny models neither stop a chat nor part
    # at a near tie on purpose): the page's wording for those cases.
    prompts = [
        {
            "prompt": "What is 12 plus 30?",
            "answer": "42",
            "agreeing_tokens": 16,
            "required_tokens": 16,
            "near_tie_at": None,
            "equal": True,
        },
    ]
    Export.objects.create(
        run=finished_run,
        owner=finished_run.owner,
        kind="gguf",
        quant="q8_0",
        status=Export.Status.DONE,
        verification={
            "kind": "gguf",
            "gguf_type": "q8_0",
            "token_agreement": 0.9876,
            "mean_kl": 0.01234,
            "chat_stopped_at_eos": True,
            "chat_stop_required": True,
            "chat_answer": "Hello there!",
            "prompts": prompts,
            "passed": True,
        },
    )
    merged_prompts = [{**prompts[0], "near_tie_at": None}] * 4 + [{**prompts[0], "near_tie_at": 3}]
    Export.objects.create(
        run=finished_run,
        owner=finished_run.owner,
        kind="merged",
        dtype="bfloat16",
        status=Export.Status.DONE,
        verification={"kind": "merged", "passed": True, "prompts": merged_prompts},
    )
    listed = owner_client.get(reverse("exports:list", args=[finished_run.pk])).content.decode()
    assert "next-token agreement 0.988, mean KL 0.0123 · chat stops at end of turn" in listed
    assert "<td>16/16</td>" in listed and "Hello there!" in listed
    assert (
        "5 check prompts answered like the adapter on its base; 1 parted from it at a near tie"
        in listed
    )


@needs_llama
def test_manage_py_export_writes_and_verifies_a_gguf_in_the_terminal(user):
    run = pretrained_run(user)
    out = io.StringIO()
    call_command("export", run=run.pk, kind="gguf", quant="f16", stdout=out)
    export = Export.objects.get()
    assert export.status == Export.Status.DONE and export.quant == "f16"
    text = out.getvalue()
    assert f"export {export.pk}: GGUF F16 of run {run.pk}" in text
    assert '"gguf_type": "f16"' in text and '"token_agreement"' in text and '"passed": true' in text
    assert f"verified: {export.folder}" in text
    assert export.gguf_path.is_file() and (export.folder / "Modelfile").is_file()
