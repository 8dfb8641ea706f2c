"""Pretraining a design as a run: queued from the design page, trained by the worker's
run job with samples, MFU and a model; text generated from it; fine-tuned from it; the
documents and tables; refusals; and ownership of every new page, download and socket."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from designer.models import Design, TrainedTokenizer
from slmlab.consumers import NOT_FOUND
from tests import websockets
from tests.factories import make_project, make_user
from tests.schemas import validate_run
from tests.streams import content_of
from training.engine.design import corpus, spec
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.spec import Layer
from training.forms import RunForm
from training.models import Generation, Run, RunSample, Worker
from training.run_config import engine_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def tiny_spec(vocab: int = 512) -> spec.Design:
    design = replace(spec.llama_tiny(), vocab_size=vocab, hidden_size=64, context_length=128)
    design.layers = [Layer("rmsnorm", 4, 2, "swiglu", 128) for _ in range(2)]
    return design


def stories_dataset(project):
    from projects.datasets import store_sample

    return store_sample(project, "pretraining-stories")


def trained_tokenizer(project, dataset, vocab: int = 512) -> TrainedTokenizer:
    """A tokenizer trained for real on the corpus, as the tokenizer job leaves it."""
    job = TrainedTokenizer.objects.create(
        owner=project.owner, project=project, dataset=dataset, vocab_size=vocab
    )
    trained = design_tokenizer.train_tokenizer(corpus.stories(600), vocab, job.folder)
    TrainedTokenizer.objects.filter(pk=job.pk).update(
        status=TrainedTokenizer.Status.DONE, trained_vocab_size=trained.get_vocab_size()
    )
    job.refresh_from_db()
    return job


@pytest.fixture
def setup(user, data_dir):
    project = make_project(user)
    dataset = stories_dataset(project)
    tokenizer = trained_tokenizer(project, dataset)
    design = Design.objects.create(
        owner=user, project=project, name="tiny", spec=tiny_spec().to_dict(), sequence_length=64
    )
    return project, dataset, tokenizer, design


def pretrain_form(dataset, tokenizer, **changes) -> dict:
    return {
        "name": "pretrain tiny",
        "tokenizer": tokenizer.pk,
        "dataset": dataset.pk,
        "steps": 6,
        "learning_rate": 3e-3,
        "sample_every": 3,
        "sample_prompt": "Mia went",
        "checkpoint_every": 3,
        **changes,
    }


def pretrain_url(design: Design) -> str:
    return reverse("designer:pretrain", args=(design.project_id, design.pk))


def pretraining_run(design, dataset, tokenizer, **extra) -> Run:
    config = {
        "design": design.spec,
        "design_name": design.name,
        "steps": 6,
        "learning_rate": 3e-3,
        "batch_size": 4,
        "sequence_length": 64,
        "sample_every": 3,
        "sample_prompt": "Mia went",
    }
    return Run.objects.create(
        owner=design.owner,
        project=design.project,
        dataset=dataset,
        kind=Run.Kind.PRETRAIN,
        design=design,
        tokenizer=tokenizer,
        name="pretraining",
        config=config,
        **extra,
    )


def test_it_queues_a_pretraining_run_on_the_training_queue(
    owner_client, setup, broker, django_capture_on_commit_callbacks
):
    _project, dataset, tokenizer, design = setup
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(pretrain_url(design), pretrain_form(dataset, tokenizer))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.kind == Run.Kind.PRETRAIN and run.base_model is None and run.status == "queued"
    assert run.design == design and run.tokenizer == tokenizer
    assert run.config["design"] == design.spec and run.config["sequence_length"] == 64
    assert run.time_limit_s == run.owner.run_time_limit_hours * 3600
    queue = broker.queues[django_settings.QUEUE_GPU]
    assert queue.qsize() == 1  # the same fair-queue token as a fine-tune


def test_a_later_edit_of_the_design_leaves_the_queued_run_as_it_was(setup):
    _project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer)
    design.spec = {**design.spec, "hidden_size": 128}
    design.save()
    run.refresh_from_db()
    assert run.config["design"]["hidden_size"] == 64


def test_a_design_too_large_for_every_live_worker_is_refused(owner_client, setup):
    _project, dataset, tokenizer, design = setup
    Worker.objects.create(
        name="w:1", hostname="w", pid=1, device="CPU", memory_total_mb=1, last_seen=timezone.now()
    )
    response = owner_client.post(pretrain_url(design), pretrain_form(dataset, tokenizer))
    body = response.content.decode()
    assert response.status_code == 400
    assert "more than the largest live worker has" in body
    assert not Run.objects.exists()


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused(owner_client, setup):
    _project, dataset, tokenizer, design = setup
    design.spec = tiny_spec(vocab=300).to_dict()
    design.save()
    response = owner_client.post(
        pretrain_url(design), pretrain_form(dataset, tokenizer), headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert response.status_code == 200 and 'id="pretrain-form"' in body
    assert "vocabulary 300 is smaller than the tokenizer&#x27;s 512" in body
    assert not Run.objects.exists()


def test_the_editor_checks_the_design_against_its_tokenizer_and_the_workers(owner_client, setup):
    from tests.designer.test_views import form_of

    project, _dataset, tokenizer, design = setup
    url = reverse("designer:preview", args=(project.pk, design.pk))
    small = form_of(tiny_spec(vocab=300), tokenizer=tokenizer.pk, sequence_length=64)
    htmx = {"HX-Request": "true"}
    body = owner_client.post(url, small, headers=htmx).content.decode()
    assert "smaller than the tokenizer" in body
    Worker.objects.create(
        name="w:1", hostname="w", pid=1, device="CPU", memory_total_mb=1, last_seen=timezone.now()
    )
    fits = form_of(tiny_spec(), tokenizer=tokenizer.pk, sequence_length=64)
    body = owner_client.post(url, fits, headers=htmx).content.decode()
    assert "more than the largest live worker has" in body
    # Saved, the design remembers its tokenizer (the YAML says which).
    Worker.objects.all().delete()
    edit = reverse("designer:edit", args=(project.pk, design.pk))
    owner_client.post(edit, fits)
    design.refresh_from_db()
    assert design.tokenizer == tokenizer
    exported = owner_client.get(reverse("designer:export", args=(project.pk, design.pk)))
    assert f"id: {tokenizer.pk}" in exported.content.decode()


@pytest.mark.slow  # about 25 s on a busy 2-core machine
def test_the_worker_pretrains_it_with_samples_and_mfu_and_the_model_generates_text(
    owner_client, setup, broker, run_queued, django_capture_on_commit_callbacks
):
    """The real thing, tiny: the run job trains it, the page shows it, text comes out."""
    project, dataset, tokenizer, design = setup
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(pretrain_url(design), pretrain_form(dataset, tokenizer))
    with django_capture_on_commit_callbacks(execute=True):
        assert "train_next" in run_queued(django_settings.QUEUE_GPU)
    run = Run.objects.get()
    assert run.status == Run.Status.COMPLETED, run.error
    assert run.step == run.total_steps == 6
    assert list(run.samples.values_list("step", flat=True)) == [3, 6]
    assert all(s.text.startswith("Mia went") for s in run.samples.all())
    assert run.mfu is not None and 0 < run.mfu < 1
    assert run.base_eval_loss is not None and run.eval_loss < run.base_eval_loss
    assert run.has_model and not run.has_adapter and not run.can_chat
    assert (run.tokenizer_dir / "tokenizer.json").exists()
    assert [c.step for c in run.checkpoints] == [3]  # the end saves the model instead
    assert not run.evaluations.exists()  # an end-of-run evaluation needs an adapter
    body = owner_client.get(run.get_absolute_url()).content.decode()
    assert 'data-testid="sample"' in body and 'data-testid="perplexity"' in body
    assert 'data-testid="mfu"' in body and "(from scratch)" in body
    assert 'id="generate-form"' in body
    # Generating: a job on the chat queue, its text pushed to the run's page.
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("training:generate", args=(run.pk,)),
            {"prompt": "Tom found", "temperature": 0.7, "max_new_tokens": 8},
            headers={"HX-Request": "true"},
        )
    assert response.status_code == 200 and 'data-testid="generation"' in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued(django_settings.QUEUE_CHAT) == ["generate_text"]
    generation = Generation.objects.get()
    assert generation.status == "done", generation.error
    assert generation.text.startswith("Tom found") and len(generation.text) > len("Tom found")
    download = owner_client.get(reverse("training:model", args=(run.pk,)))
    names = _zip_names(download)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    # The pretrained model is a base a LoRA run can start from.
    form = RunForm(project=project)
    assert list(form.fields["pretrained"].queryset) == [run]
    finetune = Run.objects.create(
        owner=run.owner,
        project=project,
        dataset=dataset,
        base_run=run,
        name="tune it",
        config={"max_steps": 1},
    )
    assert engine_config(finetune).model_dir == str(run.model_dir)
    assert finetune.base_name == "pretraining (pretrained)" or "pretrain tiny" in str(
        finetune.base_name
    )


def _zip_names(response) -> set[str]:
    import zipfile

    data = content_of(response)
    return {name.split("/")[-1] for name in zipfile.ZipFile(io.BytesIO(data)).namelist()}


def test_a_fine_tune_of_a_pretrained_model_is_started_from_the_run_form(
    owner_client, setup, tmp_path, django_capture_on_commit_callbacks
):
    from tests.factories import make_base_model
    from training.forms import CONFIG_FIELDS, _config_defaults

    project, dataset, tokenizer, design = setup
    make_base_model()
    done = pretraining_run(design, dataset, tokenizer, status=Run.Status.COMPLETED)
    others = pretraining_run(
        Design.objects.create(
            owner=make_user(), project=make_project(), name="x", spec=tiny_spec().to_dict()
        ),
        dataset,
        tokenizer,
        status=Run.Status.COMPLETED,
    )
    data = {**_config_defaults(), "name": "tune", "dataset": dataset.pk, "start_anyway": "on"}
    data = {k: v for k, v in data.items() if k in {*CONFIG_FIELDS, "name", "dataset"}}
    data.update(
        quantization="none", pretrained=done.pk, start_anyway="on", target_modules="all-linear"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("training:new", args=(project.pk,)), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    tuned = Run.objects.get(name="tune")
    assert tuned.base_run == done and tuned.base_model is None
    assert tuned.kind == Run.Kind.FINETUNE
    # Another user's pretrained model is no choice.
    refused = owner_client.post(
        reverse("training:new", args=(project.pk,)), {**data, "name": "t2", "pretrained": others.pk}
    )
    assert refused.status_code == 200 and not Run.objects.filter(name="t2").exists()


def test_its_documents_tables_and_page_follow_the_schema(owner_client, setup):
    project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer, status=Run.Status.RUNNING, mfu=0.12)
    RunSample.objects.create(run=run, step=3, prompt="Mia went", text="Mia went to the park")
    document = owner_client.get(reverse("training:run_json", args=(run.pk,))).json()
    validate_run(document)
    assert document["kind"] == "pretrain" and document["base_model"] is None
    assert document["pretraining"]["samples"] == [{"step": 3, "text": "Mia went to the park"}]
    assert document["pretraining"]["parameters"] > 0
    listing = owner_client.get(reverse("experiments:project_json", args=(project.pk,)))
    assert listing.status_code == 200
    rows = owner_client.get(reverse("experiments:project_csv", args=(project.pk,)))
    text = b"".join(rows.streaming_content).decode().lstrip("\ufeff")
    table = list(csv.DictReader(io.StringIO(text)))
    assert table[0]["kind"] == "pretrain" and table[0]["base_model"] == ""
    assert owner_client.get(reverse("experiments:table", args=(project.pk,))).status_code == 200
    assert owner_client.get(project.get_absolute_url()).status_code == 200
    body = owner_client.get(run.get_absolute_url()).content.decode()
    assert "Mia went to the park" in body and "12.0%" in body


# --- ownership: every new page, fragment, download and socket ---


def test_another_user_gets_404_everywhere(other_client, setup):
    project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer, status=Run.Status.COMPLETED)
    gets = [
        run.get_absolute_url(),
        reverse("training:run_json", args=(run.pk,)),
        reverse("training:model", args=(run.pk,)),
        reverse("designer:edit", args=(project.pk, design.pk)),
    ]
    for url in gets:
        assert other_client.get(url).status_code == 404, url
    posts = [
        (pretrain_url(design), pretrain_form(dataset, tokenizer)),
        (reverse("training:generate", args=(run.pk,)), {"prompt": "a", "temperature": 0}),
    ]
    for url, data in posts:
        assert other_client.post(url, data).status_code == 404, url
    assert not Generation.objects.exists() and Run.objects.count() == 1


def test_anonymous_visitors_are_sent_to_log_in(client, setup):
    _project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer, status=Run.Status.COMPLETED)
    for url in (
        reverse("training:model", args=(run.pk,)),
        reverse("training:generate", args=(run.pk,)),
        pretrain_url(design),
    ):
        response = client.post(url) if "model.zip" not in url else client.get(url)
        assert response.status_code == 302 and "login" in response["Location"], url


def test_the_owner_gets_404_for_a_model_that_is_not_there_yet(owner_client, setup):
    _project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer)
    assert owner_client.get(reverse("training:model", args=(run.pk,))).status_code == 404
    response = owner_client.post(
        reverse("training:generate", args=(run.pk,)),
        {"prompt": "a", "temperature": 0, "max_new_tokens": 4},
        headers={"HX-Request": "true"},
    )
    assert "when the pretraining has completed" in response.content.decode()
    assert not Generation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_run_socket_is_the_owners_only_and_pushes_samples(setup):
    _project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer, status=Run.Status.RUNNING)
    connected, code, _ = websockets.connect(f"/ws/runs/{run.pk}/", make_user())
    assert not connected and code == NOT_FOUND

    def sample():
        from training.events import publish_run

        RunSample.objects.create(run=run, step=5, text="Tom saw a fox")
        publish_run(run.pk)

    pushed = websockets.push_after_connect(f"/ws/runs/{run.pk}/", run.owner, sample)
    assert 'data-testid="sample"' in pushed and "Tom saw a fox" in pushed


def test_deleting_the_project_takes_a_pretrained_run_and_its_fine_tunes(setup):
    project, dataset, tokenizer, design = setup
    done = pretraining_run(design, dataset, tokenizer, status=Run.Status.COMPLETED)
    Run.objects.create(
        owner=done.owner, project=project, dataset=dataset, base_run=done, name="t", config={}
    )
    from projects.datasets import delete_project

    delete_project(project)  # its runs go first, a fine-tune along with its base run
    assert not Run.objects.exists()


@pytest.mark.slow  # about 25 s on a busy 2-core machine
def test_a_pretraining_cut_by_its_worker_resumes_from_its_checkpoint(
    setup, broker, run_queued, monkeypatch, django_capture_on_commit_callbacks
):
    """The worker's shutdown hands the run back at step 3; the next worker goes on."""
    from training.engine.train.outcome import Outcome
    from training.jobs import train as train_job

    _project, dataset, tokenizer, design = setup
    run = pretraining_run(design, dataset, tokenizer)
    Run.objects.filter(pk=run.pk).update(config={**run.config, "checkpoint_every": 3})
    stop_once = {"armed": True}
    original = train_job.RunReporter.should_stop

    def should_stop(self):
        if stop_once["armed"] and self.run.step >= 3:
            stop_once["armed"] = False
            return Outcome.INTERRUPTED
        return original(self)

    monkeypatch.setattr(train_job.RunReporter, "should_stop", should_stop)
    with django_capture_on_commit_callbacks(execute=True):
        train_job.train_claimed(train_job.claim_next_run())
    run.refresh_from_db()
    assert run.status == Run.Status.INTERRUPTED and [c.step for c in run.checkpoints] == [3]
    with django_capture_on_commit_callbacks(execute=True):
        train_job.train_claimed(train_job.claim_next_run())
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert list(run.metrics.values_list("step", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert list(run.samples.values_list("step", flat=True)) == [3, 6]
    assert run.logs.filter(line__startswith="resumes from checkpoint step 3").exists()
    assert run.has_model
