import pytest

from tests.factories import make_base_model, make_dataset, make_project, make_run
from training.actors import train_next
from training.models import Run, RunLog, RunMetric

pytestmark = pytest.mark.django_db


def test_a_run_is_claimed_once():
    run = make_run()
    assert run.claim("worker-a") is True
    assert run.claim("worker-b") is False
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert run.worker == "worker-a"


def test_a_duplicate_delivery_does_not_train_again():
    run = make_run()
    run.claim("worker-a")
    train_next(run.pk)  # the second delivery of the same message
    run.refresh_from_db()
    assert run.worker == "worker-a"
    assert run.status == Run.Status.RUNNING
    assert not RunLog.objects.filter(run=run).exists()


def test_a_cancelled_run_is_never_claimed():
    run = make_run()
    run.request_cancel()
    train_next(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.started is None


def test_a_missing_run_is_skipped_quietly():
    train_next(123_456)


def test_a_failing_run_is_marked_failed_with_the_reason():
    run = make_run(base_model=make_base_model(name="broken", path="/nonexistent/model"))
    train_next(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "broken" in run.error and "/nonexistent" not in run.error  # no server path
    assert run.finished is not None


@pytest.mark.slow
def test_it_trains_for_real_and_stores_every_step(
    bundled_model_dir, user, settings, tmp_path, monkeypatch
):
    # MLflow too: a local file store stands in for a tracking server.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    settings.MLFLOW_TRACKING_URI = (tmp_path / "mlruns").as_uri()
    project = make_project(owner=user)
    from training.engine.data.samples import sample_rows

    dataset = make_dataset(project, rows=sample_rows(16))
    base = make_base_model(name="bundled", path=str(bundled_model_dir))
    run = make_run(
        project=project,
        dataset=dataset,
        base_model=base,
        config={"max_steps": 3, "batch_size": 2, "max_seq_len": 64},
    )
    train_next(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert list(RunMetric.objects.filter(run=run).values_list("step", flat=True)) == [1, 2, 3]
    assert run.step == run.total_steps == 3
    assert run.tokens_per_second > 0 and run.cpu_peak_rss_mb > 0
    assert run.first_metric_at is not None
    assert run.has_adapter
    lines = list(run.logs.values_list("line", flat=True))
    assert any("trainable params" in line for line in lines)
    assert lines[-1] == "run completed"
    # What the student reads names no server path, host or process.
    import socket

    shown = "\n".join(lines) + run.worker_device
    for secret in (str(bundled_model_dir), str(tmp_path), socket.gethostname(), run.worker):
        assert secret not in shown
    assert lines[0].startswith("claimed by a worker")
    # The run's document follows the committed JSON Schema.
    from tests.schemas import validate_run
    from training.documents import run_document

    validate_run(run_document(run))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.output_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI)
    logged = client.get_run((run.output_dir / "mlflow_run_id").read_text())
    assert logged.info.status == "FINISHED"
    assert logged.data.params["max_steps"] == "3" and logged.data.params["lora_r"] == "8"
    assert logged.data.tags["slmlab.run_id"] == str(run.pk)
    history = client.get_metric_history(logged.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [
        (m.step, m.loss) for m in RunMetric.objects.filter(run=run)
    ]


def test_a_broken_mlflow_never_stops_training(settings, monkeypatch):
    from training.mlflow_log import MlflowLogger

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9/"  # nothing listens on the discard port
    lines: list[str] = []
    mlflow = MlflowLogger(make_run(), lines.append)
    mlflow.log_step(1, {"train/loss": 1.0})
    mlflow.log_step(2, {"train/loss": 0.5})  # skipped: one message, not one per step
    mlflow.end("completed")

    assert mlflow.broken
    assert len(lines) == 1 and lines[0].startswith("MLflow logging stopped: ")


@pytest.mark.slow
def test_a_run_at_its_time_limit_stops_with_a_checkpoint_and_can_chat(bundled_model_dir, user):
    from training.engine.data.samples import sample_rows

    project = make_project(owner=user)
    run = make_run(
        project=project,
        dataset=make_dataset(project, rows=sample_rows(16)),
        base_model=make_base_model(name="bundled", path=str(bundled_model_dir)),
        config={"max_steps": 500, "batch_size": 2, "max_seq_len": 64, "quantization": "none"},
        time_limit_s=1,
    )
    train_next(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.TIMED_OUT, run.error
    assert run.error == "time limit of 1 s reached"
    assert 0 < run.step < 500
    assert [c.step for c in run.checkpoints] == [run.step]
    assert run.has_adapter and run.can_chat
    assert run.logs.last().line.startswith(f"time limit reached at step {run.step}/500")
