"""Checkpoints on the real bundled model: a stopped run resumes exactly where it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from training.engine.train import checkpoint
from training.engine.train.checkpoint import CheckpointError
from training.engine.train.loop import TrainHooks, train
from training.engine.train.outcome import Outcome

# Dropout on and two micro-batches per step: a resume must restore the dropout RNG and
# drop a half-done accumulation window, or the losses below would differ.
RESUME_SETTINGS = {"max_steps": 6, "grad_accum": 2, "lora_dropout": 0.1, "quantization": "none"}


def stop_at_poll(n: int):
    """A should_stop that answers INTERRUPTED on its n-th call (one call per micro-batch)."""
    calls = {"n": 0}

    def should_stop() -> str | None:
        calls["n"] += 1
        return Outcome.INTERRUPTED if calls["n"] >= n else None

    return should_stop


def adapter_weights(folder: Path) -> dict[str, Any]:
    return load_file(folder / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def straight_run(model_dir, sample_dataset, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    metrics: list[Any] = []
    config = tiny_config(model_dir, sample_dataset, out, checkpoint_every=0, **RESUME_SETTINGS)
    train(config, TrainHooks(on_metrics=metrics.append))
    return {"losses": [m.loss for m in metrics], "adapter": adapter_weights(out / "adapter")}


@pytest.mark.slow
def test_a_run_stopped_mid_step_resumes_exactly_where_it_was(
    straight_run, model_dir, sample_dataset, tiny_config, tmp_path
):
    config = tiny_config(model_dir, sample_dataset, tmp_path, checkpoint_every=0, **RESUME_SETTINGS)
    first: list[Any] = []
    # Polls 1-8 are steps 1-4; poll 10 is the second micro-batch of step 5.
    stopped = train(config, TrainHooks(on_metrics=first.append, should_stop=stop_at_poll(10)))

    assert stopped.status == "interrupted" and stopped.steps == 4
    assert [c.step for c in checkpoint.list_complete(tmp_path)] == [4]
    assert not (tmp_path / "adapter").exists()

    logs: list[str] = []
    rest: list[Any] = []
    resumed = train(
        config,
        TrainHooks(on_metrics=rest.append, on_log=logs.append),
        resume_from=checkpoint.latest(tmp_path),
    )

    assert resumed.status == "completed" and resumed.steps == 6
    assert [m.step for m in first + rest] == [1, 2, 3, 4, 5, 6]
    assert [m.loss for m in first + rest] == pytest.approx(straight_run["losses"], abs=1e-5)
    assert "resumed from checkpoint step-00000004 at step 4/6" in logs
    final = adapter_weights(tmp_path / "adapter")
    for name, tensor in straight_run["adapter"].items():
        assert (final[name] - tensor).abs().max() < 1e-5, name
    # Throughput and token counts carry on across the resume.
    assert resumed.train_tokens > stopped.train_tokens


@pytest.mark.slow
def test_periodic_checkpoints_keep_only_the_newest(
    model_dir, sample_dataset, tiny_config, tmp_path
):
    config = tiny_config(
        model_dir, sample_dataset, tmp_path, max_steps=5, checkpoint_every=1, keep_checkpoints=2
    )
    logs: list[str] = []
    train(config, TrainHooks(on_log=logs.append))

    # Step 5 is the last: the adapter holds it, so no checkpoint is written for it.
    assert [c.step for c in checkpoint.list_complete(tmp_path)] == [3, 4]
    assert sorted(p.name for p in checkpoint.root(tmp_path).iterdir()) == [
        "step-00000003",
        "step-00000004",
    ]
    assert "checkpoint step-00000001 saved" in logs
    state = json.loads((checkpoint.root(tmp_path) / "step-00000004" / "state.json").read_text())
    assert state["step"] == 4 and state["micro_seen"] == 4 and state["total_steps"] == 5


@pytest.mark.slow
def test_an_incomplete_newest_checkpoint_is_skipped(
    model_dir, sample_dataset, tiny_config, tmp_path
):
    config = tiny_config(model_dir, sample_dataset, tmp_path, max_steps=3, checkpoint_every=1)
    train(config)
    newest = checkpoint.root(tmp_path) / "step-00000002"
    older = checkpoint.root(tmp_path) / "step-00000001"
    assert checkpoint.latest(tmp_path).path == newest

    # A crash mid-save: the optimizer file is cut short after the marker was written...
    optimizer = newest / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    assert checkpoint.latest(tmp_path).path == older
    # ...or the marker was never written at all.
    shutil.copytree(older, checkpoint.root(tmp_path) / "step-00000009")
    (checkpoint.root(tmp_path) / "step-00000009" / checkpoint.MARKER).unlink()
    assert checkpoint.latest(tmp_path).path == older


@pytest.mark.slow
def test_the_time_limit_stops_cleanly_with_a_checkpoint_and_an_adapter(
    model_dir, sample_dataset, tiny_config, tmp_path
):
    config = tiny_config(
        model_dir, sample_dataset, tmp_path, max_steps=50, checkpoint_every=0, time_limit_s=0.001
    )
    logs: list[str] = []
    result = train(config, TrainHooks(on_log=logs.append))

    assert result.status == "timed_out" and result.steps == 1
    assert [c.step for c in checkpoint.list_complete(tmp_path)] == [1]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert any("time limit of 0 s reached at step 1/50" in line for line in logs)


@pytest.mark.slow
def test_resuming_with_different_settings_is_refused(
    model_dir, sample_dataset, tiny_config, tmp_path
):
    train(tiny_config(model_dir, sample_dataset, tmp_path, max_steps=2, checkpoint_every=1))
    changed = tiny_config(
        model_dir, sample_dataset, tmp_path, max_steps=2, checkpoint_every=1, lora_r=16
    )
    with pytest.raises(CheckpointError, match=r"different settings \(lora_r\)"):
        train(changed, resume_from=checkpoint.latest(tmp_path))


def test_deleting_a_checkpoint_removes_only_that_one(tmp_path):
    for step in (2, 4):
        folder = checkpoint.root(tmp_path) / f"step-{step:08d}"
        folder.mkdir(parents=True)
        (folder / "state.json").write_text("{}")
        (folder / checkpoint.MARKER).write_text(json.dumps({"files": {"state.json": 2}}))

    assert [c.step for c in checkpoint.list_complete(tmp_path)] == [2, 4]
    assert checkpoint.delete(tmp_path, 2) is True
    assert checkpoint.delete(tmp_path, 2) is False
    assert [c.step for c in checkpoint.list_complete(tmp_path)] == [4]
