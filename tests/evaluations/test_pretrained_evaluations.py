"""Models pretrained in the lab evaluated: a pretraining run's model alone (no base to
compare with) on a dataset of its project, from its page and through the real job; a
fine-tune of it, base (the pretrained model) vs tuned; ownership."""

import io
import json

import pytest
import yaml
from django.conf import settings
from django.urls import reverse

from evaluations.models import Evaluation
from tests.factories import make_dataset
from tests.pretrained import finetune_of, pretrained_run

pytestmark = pytest.mark.django_db

FORM = {
    "limit": 3,
    "metrics": ["exact_match", "rouge_l", "loss"],
    "max_new_tokens": 4,
    "temperature": 0,
}


@pytest.fixture
def pretrained(user):
    run = pretrained_run(user)
    dataset = make_dataset(run.project, name="answers")
    dataset.val_percent = 34
    dataset.save()
    return run


def test_a_pretrained_model_is_evaluated_alone_on_a_dataset_of_its_project(
    owner_client, pretrained, broker, run_queued, django_capture_on_commit_callbacks
):
    page = owner_client.get(pretrained.get_absolute_url()).content.decode()
    assert 'data-testid="start-evaluation"' in page and "Evaluation of the pretrained" in page
    answers = pretrained.project.datasets.get(name="answers")
    url = reverse("evaluations:new", args=[pretrained.pk])
    # Its own corpus is plain text: nothing to compare an answer with.
    refused = owner_client.post(url, {**FORM, "dataset": pretrained.dataset_id})
    assert 'data-field="dataset"' in refused.content.decode()
    assert not Evaluation.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url, {**FORM, "dataset": answers.pk})
    assert response.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued(settings.QUEUE_GPU) == ["run_evaluation"]
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "done", evaluation.error
    assert evaluation.of_pretrained and not evaluation.of_run
    assert evaluation.examples_total >= 1
    assert all(not row.tuned_output for row in evaluation.rows.all())
    assert [m["name"] for m in evaluation.summary["metrics"]] == ["exact_match", "rouge_l", "loss"]
    detail = owner_client.get(evaluation.get_absolute_url()).content.decode()
    assert "a pretraining run has no base to compare with" in detail
    assert "evaluation-link" in owner_client.get(pretrained.get_absolute_url()).content.decode()


def test_a_fine_tune_of_a_pretrained_model_is_evaluated_against_it(
    owner_client, pretrained, broker, run_queued, django_capture_on_commit_callbacks
):
    tuned = finetune_of(pretrained, dataset=pretrained.project.datasets.get(name="answers"))
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("evaluations:new", args=[tuned.pk]), FORM)
    with django_capture_on_commit_callbacks(execute=True):
        run_queued(settings.QUEUE_GPU)
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "done", evaluation.error
    assert evaluation.of_run and evaluation.rows.exists()
    assert all(row.tuned_output is not None for row in evaluation.rows.all())


def test_manage_py_evaluate_scores_a_pretrained_models_folder(pretrained, tmp_path):
    from django.core.management import call_command

    data = tmp_path / "eval.jsonl"
    data.write_text('{"instruction": "Say hi", "input": "", "output": "hi"}\n')
    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_dir": str(pretrained.model_dir),
                "data": str(data),
                "metrics": ["exact_match", "loss"],
                "max_new_tokens": 4,
                "max_seq_len": 128,
            }
        )
    )
    out = io.StringIO()
    call_command("evaluate", config=str(config), stdout=out, stderr=io.StringIO())
    report = json.loads(out.getvalue())
    assert len(report["examples"]) == 1 and report["summary"]["metrics"]


def test_another_user_cannot_evaluate_a_pretrained_model(other_client, client, pretrained):
    answers = pretrained.project.datasets.get(name="answers")
    url = reverse("evaluations:new", args=[pretrained.pk])
    assert other_client.post(url, {**FORM, "dataset": answers.pk}).status_code == 404
    assert "/accounts/login/" in client.post(url, FORM)["Location"]
    evaluation = Evaluation.objects.create(
        owner=pretrained.owner, run=pretrained, project=pretrained.project, metrics=["loss"]
    )
    for name in ("detail", "json", "csv"):
        page = reverse(f"evaluations:{name}", args=[evaluation.pk])
        assert other_client.get(page).status_code == 404, name
    assert Evaluation.objects.count() == 1
