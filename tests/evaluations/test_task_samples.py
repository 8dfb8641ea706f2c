"""Issue 22, item 3: the samples for our users' own tasks. On each, the run form's
pre-filled short run makes the bundled model measurably better on held-out rows, by the
metric that task is judged by (the end-of-run evaluation, base against tuned)."""

import json

import pytest
from django.conf import settings

from evaluations.models import Evaluation
from projects.datasets import store_sample
from tests.factories import make_base_model, make_project
from training.actors import train_next
from training.engine.data import task_samples
from training.forms import CONFIG_FIELDS, RunForm
from training.models import Run

# The metric each task is judged by, and the least the tuned model must reach on it.
TASKS = {
    "decompose": ("json_equal", 0.5),  # measured 0.0 -> 0.96
    "ko-en": ("rouge_l", 0.6),
    "ko-instruct": ("rouge_l", 0.5),  # measured 0.27 -> 0.59
}


def test_the_korean_particles_follow_the_final_consonant():
    assert task_samples.topic("민수") == "민수는" and task_samples.topic("선생님") == "선생님은"
    assert task_samples.subject("고양이") == "고양이가" and task_samples.subject("책") == "책이"
    assert task_samples.obj("사과") == "사과를" and task_samples.obj("밥") == "밥을"
    with pytest.raises(ValueError):
        task_samples.has_final_consonant("cat")


@pytest.mark.parametrize(
    "rows",
    [
        task_samples.decomposition_rows,
        task_samples.translation_rows,
        task_samples.korean_instruction_rows,
    ],
)
def test_each_task_sample_is_deterministic_and_has_no_duplicate_prompts(rows):
    first, again = rows(240, 1234), rows(240, 1234)
    assert first == again and len(first) == 240
    assert len({(r["instruction"], r["input"]) for r in first}) == 240
    assert first != rows(240, 99)


def test_decompositions_are_json_lists_of_questions():
    for row in task_samples.decomposition_rows(240, 1234):
        parts = json.loads(row["output"])
        assert isinstance(parts, list) and 2 <= len(parts) <= 3
        assert all(isinstance(p, str) and p.endswith("?") for p in parts)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.django_db
@pytest.mark.parametrize("key", list(TASKS))
def test_the_pre_filled_short_run_makes_the_bundled_model_better_at_the_task(
    key, bundled_model_dir, user, broker, run_queued, django_capture_on_commit_callbacks
):
    project = make_project(owner=user)
    dataset = store_sample(project, key)
    dataset.val_percent = 10
    dataset.save()
    base = make_base_model(name="bundled", path=str(bundled_model_dir))
    form = RunForm(project=project)
    config = {name: form.fields[name].initial for name in CONFIG_FIELDS}
    run = Run.objects.create(
        owner=user, project=project, dataset=dataset, base_model=base, name=key, config=config
    )
    with django_capture_on_commit_callbacks(execute=True):
        train_next(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    with django_capture_on_commit_callbacks(execute=True):
        assert "run_evaluation" in run_queued(settings.QUEUE_GPU)
    evaluation = Evaluation.objects.get(run=run)
    assert evaluation.status == "done", evaluation.error
    metrics = {m["name"]: m for m in evaluation.summary["metrics"]}
    name, least = TASKS[key]
    judged = metrics[name]
    print(key, {m: (v["base"]["mean"], v["tuned"]["mean"]) for m, v in metrics.items()})
    assert judged["tuned"]["mean"] >= least > judged["base"]["mean"]
    assert judged["test"]["significant"] and judged["verdict"] == "better"
