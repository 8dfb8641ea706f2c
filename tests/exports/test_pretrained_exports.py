"""Exports of models pretrained in the lab: a pretraining run's own model (merged
safetensors; GGUF of Llama- and GPT-2-style designs, verified in llama.cpp) and a
fine-tune of it; a model the writer cannot write is refused with the reason on its page;
another user gets 404."""

import pytest
from django.conf import settings
from django.urls import reverse

from exports.models import Export
from exports.services import ExportRefused, create_export
from tests.exports.test_exports import export_via_page, zip_names
from tests.pretrained import finetune_of, pretrained_run
from training.engine.export import llama
from training.engine.export.gguf_writer import read_metadata

pytestmark = pytest.mark.django_db


@pytest.fixture
def pretrained(user):
    return pretrained_run(user)


def test_a_pretrained_models_merged_export_is_its_own_weights_verified(
    owner_client, pretrained, htmx_headers, broker, run_queued, django_capture_on_commit_callbacks
):
    page = owner_client.get(pretrained.get_absolute_url()).content.decode()
    assert 'data-testid="export-form"' in page and 'data-testid="gguf-refusal"' not in page
    assert '<option value="adapter">' not in page  # it has no adapter
    export_via_page(
        owner_client,
        pretrained,
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
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        n.split("/")[-1] for n in names
    }
    with pytest.raises(ExportRefused, match="no LoRA adapter"):
        create_export(pretrained, "adapter")


@pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed")
def test_a_pretrained_llama_style_model_exports_as_gguf_that_llama_cpp_loads_and_agrees_with(
    pretrained, broker, run_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        create_export(pretrained, "gguf", quant="f16")
    run_queued(settings.QUEUE_DEFAULT)
    export = Export.objects.get()
    assert export.status == Export.Status.DONE, export.error
    report = export.verification
    assert report["passed"] and report["tokenization_equal"]
    assert all(p["equal"] for p in report["prompts"])  # first 16 tokens, as for any F16
    assert report["token_agreement"] > 0.95 and report["mean_kl"] < 0.01
    assert not report["chat_stop_required"]  # never taught to end a turn
    metadata = read_metadata(export.gguf_path)
    assert metadata["general.architecture"] == "llama"
    assert metadata["tokenizer.ggml.pre"] == "gpt-2" and metadata["tokenizer.ggml.merges"] > 0
    assert "<|assistant|>" in metadata["tokenizer.chat_template"]
    assert (export.folder / "Modelfile").read_text().count("<|eos|>") >= 1


def test_a_fine_tune_of_a_pretrained_model_exports_merged_onto_it(
    pretrained, broker, run_queued, django_capture_on_commit_callbacks
):
    tuned = finetune_of(pretrained)
    with django_capture_on_commit_callbacks(execute=True):
        create_export(tuned, "merged", dtype="float32")
    run_queued(settings.QUEUE_DEFAULT)
    export = Export.objects.get()
    assert export.status == Export.Status.DONE, export.error
    assert export.verification["passed"]


@pytest.mark.skipif(not llama.available(), reason="llama-cpp-python not installed")
def test_a_pretrained_gpt2_style_model_exports_as_gguf_too(
    user, broker, run_queued, django_capture_on_commit_callbacks
):
    gpt2 = pretrained_run(user, kind="gpt2")
    with django_capture_on_commit_callbacks(execute=True):
        create_export(gpt2, "gguf", quant="f16")
    run_queued(settings.QUEUE_DEFAULT)
    export = Export.objects.get()
    assert export.status == Export.Status.DONE, export.error
    assert export.verification["tokenization_equal"]
    assert all(p["equal"] for p in export.verification["prompts"])
    assert export.verification["token_agreement"] > 0.95  # Conv1D transposed, positions kept
    metadata = read_metadata(export.gguf_path)
    assert metadata["general.architecture"] == "gpt2" and "gpt2.context_length" in metadata


def test_a_model_the_gguf_writer_cannot_write_is_refused_with_the_reason_on_its_page(
    owner_client, pretrained, htmx_headers, broker
):
    config = pretrained.model_dir / "config.json"
    config.write_text(config.read_text().replace("LlamaForCausalLM", "Qwen2ForCausalLM"))
    page = owner_client.get(pretrained.get_absolute_url()).content.decode()
    assert 'data-testid="gguf-refusal"' in page and "Qwen2ForCausalLM" in page
    response = owner_client.post(
        reverse("exports:create", args=[pretrained.pk]),
        {"kind": "gguf", "quant": "f16"},
        **htmx_headers,
    )
    assert "Qwen2ForCausalLM" in response.content.decode() and not Export.objects.exists()


def test_another_user_gets_404_on_a_pretrained_runs_exports(other_client, client, pretrained):
    export = create_export(pretrained, "merged", dtype="float32", enqueue=False)
    for url in (
        reverse("exports:list", args=[pretrained.pk]),
        reverse("exports:download", args=[export.pk]),
    ):
        assert other_client.get(url).status_code == 404, url
        assert client.get(url)["Location"].startswith(reverse("account_login")), url
    for url in (
        reverse("exports:create", args=[pretrained.pk]),
        reverse("exports:delete", args=[export.pk]),
    ):
        assert other_client.post(url, {"kind": "merged", "dtype": "float32"}).status_code == 404
    assert Export.objects.count() == 1


def test_the_model_card_of_a_pretrained_model_names_no_base_model(pretrained):
    from exports.jobs.push import card_facts
    from exports.models import HubPush
    from training.engine.export.card import model_card

    export = create_export(pretrained, "merged", dtype="float32", enqueue=False)
    push = HubPush.objects.create(
        export=export, owner=pretrained.owner, repo_id="me/tiny", private=True
    )
    card = model_card(card_facts(push))
    assert "pretrained from random weights in SLM Lab" in card and "LoRA" not in card
    assert "base_model:" not in card and "- pretrained" in card
