"""Issue 15, item 7: the JSON-answer sample, a 10% validation split and the run form's
pre-filled settings; the end-of-run evaluation shows that tuning worked, and says so."""

import pytest
from django.conf import settings

from evaluations.models import Evaluation
from projects.datasets import store_sample
from tests.factories import make_base_model, make_project
from training.actors import train_next
from training.forms import CONFIG_FIELDS, RunForm
from training.models import Run

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(1800)]


def test_the_sample_run_evaluates_base_against_tuned_and_the_gain_is_significant(
    bundled_model_dir, user, broker, run_queued, django_capture_on_commit_callbacks
):
    project = make_project(owner=user)
    dataset = store_sample(project, "json-answer")
    dataset.val_percent = 10
    dataset.save()
    base = make_base_model(name="bundled", path=str(bundled_model_dir))
    form = RunForm(project=project)
    config = {name: form.fields[name].initial for name in CONFIG_FIELDS}
    run = Run.objects.create(
        owner=user,
        project=project,
        dataset=dataset,
        base_model=base,
        name="sample",
        config=config,
    )
    with django_capture_on_commit_callbacks(execute=True):
        train_next(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    with django_capture_on_commit_callbacks(execute=True):
        ran = run_queued(settings.QUEUE_GPU)
    assert "run_evaluation" in ran
    evaluation = Evaluation.objects.get(run=run)
    assert evaluation.status == "done", evaluation.error
    assert evaluation.automatic and evaluation.rows.count() == 24
    metrics = {m["name"]: m for m in evaluation.summary["metrics"]}
    for name, m in metrics.items():  # the figures, for the README (pytest -s)
        p = m["test"]["p_value"] if m["test"] else None
        print(f"{name}: base {m['base']['mean']:.3f} tuned {m['tuned']['mean']:.3f} p {p}")
    valid = metrics["valid_json"]
    assert valid["base"]["mean"] <= 0.10
    assert valid["tuned"]["mean"] >= 0.90
    assert valid["test"]["significant"] and valid["verdict"] == "better"
    exact = metrics["exact_match"]
    assert exact["tuned"]["mean"] > exact["base"]["mean"]
