"""Runs evaluate on their dataset's validation split; the page, chart and JSON show it."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from tests.factories import make_base_model, make_dataset, make_project, make_run
from training.actors import train_next
from training.engine.config import RunConfig
from training.events import loss_chart
from training.jobs.train import engine_config
from training.models import Run, RunMetric

pytestmark = pytest.mark.django_db


def add_metric(run, step: int, loss: float, eval_loss: float | None = None) -> RunMetric:
    return RunMetric.objects.create(
        run=run,
        step=step,
        epoch=step / 10,
        loss=loss,
        eval_loss=eval_loss,
        learning_rate=1e-3,
        tokens=100,
        tokens_per_second=50.0,
        elapsed_s=float(step),
    )


def test_a_run_reads_the_split_from_its_dataset(user):
    dataset = make_dataset(make_project(owner=user))
    dataset.val_percent, dataset.split_seed = 20, 5
    dataset.save()
    run = make_run(project=dataset.project, dataset=dataset)

    config = engine_config(run)

    assert (config.validation_ratio, config.split_seed, config.validation_path) == (0.2, 5, "")


def test_a_validation_file_replaces_the_share(user):
    dataset = make_dataset(make_project(owner=user))
    dataset.val_percent = 20
    dataset.validation_file.save("v.jsonl", ContentFile(b'{"instruction": "a", "output": "b"}\n'))
    dataset.validation_row_count = 1
    dataset.save()

    config = engine_config(make_run(project=dataset.project, dataset=dataset))

    assert config.validation_path == dataset.validation_file.path
    assert config.validation_ratio == 0.0
    config.validate()


def test_rewinding_keeps_the_validation_loss_of_the_kept_steps(user):
    run = make_run(project=make_project(owner=user))
    add_metric(run, 1, 3.0)
    add_metric(run, 2, 2.5, eval_loss=2.8)
    add_metric(run, 3, 2.0)
    add_metric(run, 4, 1.8, eval_loss=2.1)
    run.eval_loss = 2.1
    run.save()

    run.rewind_to(3)

    run.refresh_from_db()
    assert run.eval_loss == 2.8
    assert list(run.metrics.values_list("step", flat=True)) == [1, 2, 3]


def test_the_chart_draws_validation_on_the_training_scale():
    chart = loss_chart([(1, 4.0), (2, 3.0), (3, 2.0)], [(0, 5.0), (3, 1.0)])

    # One scale for both: the base model's 5.0 is the top, the tuned 1.0 the bottom.
    assert chart["first_step"] == 0 and chart["last_step"] == 3
    assert [t["label"] for t in chart["ticks"]] == ["5", "3", "1"]
    top, bottom = chart["eval_dots"]
    assert top["y"] == pytest.approx(12) and bottom["y"] == pytest.approx(220 - 28)
    assert chart["eval_polyline"] == f"48.0,12.0 {640 - 12:.1f},{220 - 28:.1f}"
    assert loss_chart([(1, 4.0)])["eval_dots"] == []


def test_the_run_page_and_json_show_base_and_tuned_validation_loss(owner_client, user):
    run = make_run(project=make_project(owner=user))
    add_metric(run, 1, 3.0)
    add_metric(run, 2, 2.0, eval_loss=2.25)
    Run.objects.filter(pk=run.pk).update(base_eval_loss=3.5, eval_loss=2.25, step=2)

    page = owner_client.get(reverse("training:run", args=[run.pk])).content.decode()
    data = owner_client.get(reverse("training:run_json", args=[run.pk])).json()

    assert 'data-testid="eval-loss">2.2500<' in page
    assert "3.5000" in page  # the base model's
    assert 'data-testid="eval-curve" data-points="2"' in page  # base point + step 2
    assert (data["eval_loss"], data["base_eval_loss"]) == (2.25, 3.5)
    assert [m["eval_loss"] for m in data["metrics"]] == [None, 2.25]


def test_a_run_without_validation_shows_no_validation_curve(owner_client, user):
    run = make_run(project=make_project(owner=user))
    add_metric(run, 1, 3.0)

    page = owner_client.get(reverse("training:run", args=[run.pk])).content.decode()

    assert 'data-testid="eval-curve"' not in page
    assert 'data-testid="eval-loss"' not in page


@pytest.mark.slow
def test_a_worker_stores_the_validation_loss_of_every_evaluation(bundled_model_dir, user):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from training.engine.data.samples import sample_rows

    project = make_project(owner=user)
    dataset = make_dataset(project, rows=sample_rows(16))
    dataset.val_percent = 25
    dataset.save()
    run = make_run(
        project=project,
        dataset=dataset,
        base_model=make_base_model(name="bundled", path=str(bundled_model_dir)),
        config={"max_steps": 3, "batch_size": 2, "max_seq_len": 64, "eval_every": 2},
    )

    train_next(run.pk)

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    evals = list(run.metrics.values_list("step", "eval_loss"))
    assert [step for step, loss in evals if loss is not None] == [2, 3]  # every 2 and the last
    assert run.eval_loss == evals[-1][1]
    assert run.base_eval_loss is not None and run.eval_loss < run.base_eval_loss
    assert any(
        line.startswith("validation: 4 rows") for line in run.logs.values_list("line", flat=True)
    )
    events = EventAccumulator(str(run.output_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/loss")] == [0, 2, 3]


def test_the_form_takes_an_evaluation_interval(owner_client, user):
    from tests.training.test_run_views import valid_form

    project = make_project(owner=user)
    dataset = make_dataset(project)
    response = owner_client.post(
        reverse("training:new", args=[project.pk]),
        valid_form(project, dataset, eval_every=5, start_anyway="on"),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    run = Run.objects.get(project=project)
    assert run.config["eval_every"] == 5
    RunConfig.from_dict({"model_dir": "m", "dataset_path": "d", "output_dir": "o", **run.config})
