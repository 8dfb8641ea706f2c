"""Runs hold out the dataset's validation split and report a validation loss."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from training.engine.config import ConfigError, RunConfig
from training.engine.data.pipeline import examples_for_run, records_for_run
from training.engine.data.records import read_dataset
from training.engine.data.split import split_rows, validation_count
from training.engine.evaluate.loss import evaluation_loss
from training.engine.train import checkpoint
from training.engine.train.loop import TrainHooks, train
from training.engine.train.outcome import Outcome

# Dropout on, so an evaluation that consumed random numbers or left the model in eval
# mode would change the training losses compared below.
SETTINGS = {"quantization": "none", "autocast": "float32", "lora_dropout": 0.1, "max_steps": 4}


def write_rows(path: Path, records: list[Any]) -> Path:
    rows = [{k: r.fields[k] for k in ("instruction", "input", "output")} for r in records]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_run_holds_out_the_rows_the_dataset_page_counts(sample_dataset: Path) -> None:
    config = RunConfig("m", str(sample_dataset), "o", validation_ratio=0.25, split_seed=7)
    every = read_dataset(sample_dataset)

    train_rows, val_rows = records_for_run(config)

    assert len(val_rows) == validation_count(len(every), 0.25) == 6
    assert (train_rows, val_rows) == split_rows(every, 0.25, 7)
    assert len(train_rows) + len(val_rows) == len(every)
    other_seed = records_for_run(RunConfig("m", str(sample_dataset), "o", validation_ratio=0.25))
    assert other_seed[1] != val_rows


def test_a_validation_file_is_read_like_the_dataset(sample_dataset: Path, tmp_path: Path) -> None:
    rows = read_dataset(sample_dataset)
    validation = write_rows(tmp_path / "val.jsonl", rows[:3])
    config = RunConfig("m", str(sample_dataset), "o", validation_path=str(validation))

    train_rows, val_rows = records_for_run(config)

    assert train_rows == rows
    assert val_rows == rows[:3]


def test_without_validation_nothing_is_held_out(sample_dataset: Path) -> None:
    train_rows, val_rows = records_for_run(RunConfig("m", str(sample_dataset), "o"))

    assert val_rows == [] and len(train_rows) == 24


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"validation_ratio": 0.6}, "validation_ratio"),
        ({"validation_ratio": -0.1}, "validation_ratio"),
        ({"validation_ratio": 0.1, "validation_path": "v.jsonl"}, "validation_ratio"),
        ({"eval_every": -1}, "eval_every"),
        ({"split_seed": -3}, "split_seed"),
    ],
)
def test_bad_validation_settings_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig("m", "d", "o", **overrides).validate()

    assert field in err.value.errors


def test_auto_evaluates_about_ten_times_a_run() -> None:
    config = RunConfig("m", "d", "o")

    assert config.eval_interval(40) == 4
    assert config.eval_interval(5) == 1
    assert RunConfig("m", "d", "o", eval_every=7).eval_interval(40) == 7


@pytest.mark.slow
def test_a_run_reports_base_and_tuned_validation_loss_without_changing_training(
    model_dir: Path, sample_dataset: Path, tiny_config: Any, tmp_path: Path, tokenizer: Any
) -> None:
    config = tiny_config(
        model_dir,
        sample_dataset,
        tmp_path / "with-val",
        validation_ratio=0.25,
        split_seed=3,
        eval_every=2,
        **SETTINGS,
    )
    train_rows, val_rows = records_for_run(config)
    evals: list[tuple[int, float]] = []
    metrics: list[Any] = []
    logs: list[str] = []

    result = train(
        config,
        TrainHooks(
            on_metrics=metrics.append,
            on_log=logs.append,
            on_eval=lambda step, loss: evals.append((step, loss)),
        ),
    )

    assert [step for step, _ in evals] == [0, 2, 4]
    assert all(math.isfinite(loss) and loss > 0 for _, loss in evals)
    assert result.eval_loss == evals[-1][1]
    assert evals[-1][1] < evals[0][1]  # it learns the held-out answers' format
    assert "validation: 6 rows, 6 examples" in logs
    assert any(line.startswith("validation loss ") and "at step 4" in line for line in logs)

    # The same run on exactly the training rows, never evaluating: identical losses, so
    # the held-out rows were not trained on and evaluating disturbed nothing.
    plain = tiny_config(
        model_dir,
        write_rows(tmp_path / "train.jsonl", train_rows),
        tmp_path / "plain",
        **SETTINGS,
    )
    reference: list[Any] = []
    train(plain, TrainHooks(on_metrics=reference.append))
    assert [m.loss for m in metrics] == pytest.approx([m.loss for m in reference], abs=1e-6)

    # The reported losses are the validation loss of the base model and of the adapter.
    from peft import PeftModel

    from training.engine.models import store

    base, _ = store.load_model_and_tokenizer(model_dir, quantization="none")
    val_examples, _ = examples_for_run(tokenizer, val_rows, config)
    before = evaluation_loss(base, val_examples, tokenizer.pad_token_id)
    tuned = PeftModel.from_pretrained(base, result.adapter_dir)
    after = evaluation_loss(tuned, val_examples, tokenizer.pad_token_id)
    assert evals[0][1] == pytest.approx(before.loss, rel=1e-4)
    assert evals[-1][1] == pytest.approx(after.loss, rel=1e-4)


@pytest.mark.slow
def test_a_resumed_run_evaluates_only_the_steps_it_trains(
    model_dir: Path, sample_dataset: Path, tiny_config: Any, tmp_path: Path
) -> None:
    config = tiny_config(
        model_dir,
        sample_dataset,
        tmp_path,
        validation_ratio=0.25,
        eval_every=1,
        checkpoint_every=0,
        **SETTINGS,
    )
    evals: list[int] = []
    polls = {"n": 0}

    def stop_in_step_3() -> str | None:
        polls["n"] += 1
        return Outcome.INTERRUPTED if polls["n"] >= 3 else None

    stopped = train(
        config, TrainHooks(should_stop=stop_in_step_3, on_eval=lambda s, _: evals.append(s))
    )
    assert stopped.status == "interrupted" and stopped.steps == 2
    resumed = train(
        config,
        TrainHooks(on_eval=lambda s, _: evals.append(s)),
        resume_from=checkpoint.latest(tmp_path),
    )

    assert resumed.status == "completed"
    assert evals == [0, 1, 2, 3, 4]


def test_an_old_checkpoint_without_validation_settings_still_resumes(
    tmp_path: Path, sample_dataset: Path
) -> None:
    folder = tmp_path / "checkpoints" / "step-00000002"
    folder.mkdir(parents=True)
    saved = RunConfig("m", str(sample_dataset), "o").to_dict()
    for name in ("validation_path", "validation_ratio", "split_seed", "eval_every"):
        del saved[name]
    (folder / "state.json").write_text(json.dumps({"step": 2, "config": saved}))
    found = checkpoint.Checkpoint(step=2, path=folder, created=0.0, size_bytes=0)

    checkpoint.check_compatible(found, RunConfig("m", str(sample_dataset), "o").to_dict())
    with pytest.raises(checkpoint.CheckpointError, match="validation_ratio"):
        checkpoint.check_compatible(
            found, RunConfig("m", str(sample_dataset), "o", validation_ratio=0.1).to_dict()
        )


@pytest.mark.slow
def test_evaluating_a_4bit_model_leaves_its_training_gradients_unchanged(
    model_dir: Path, sample_dataset: Path, tokenizer: Any
) -> None:
    from bitsandbytes.nn.modules import Linear4bit

    from training.engine.models import store
    from training.engine.train.batches import collate, count_trained, summed_loss
    from training.engine.train.lora import attach_lora

    config = RunConfig("m", str(sample_dataset), "o", quantization="4bit", lora_dropout=0.0)
    examples, _ = examples_for_run(tokenizer, read_dataset(sample_dataset)[:4], config)
    batch = collate(examples, tokenizer.pad_token_id)
    model = attach_lora(store.load_model_and_tokenizer(model_dir, quantization="4bit")[0], config)

    def grads() -> dict[str, Any]:
        model.train().zero_grad(set_to_none=True)
        (summed_loss(model, batch) / count_trained(batch)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    before = grads()
    evaluation_loss(model, examples, tokenizer.pad_token_id)
    after = grads()

    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert layers and not any(
        getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers
    )
    # Fresh adapters: B is zero, so only B gets gradients, and the lower layers' only
    # through the upper layers' 4-bit base weights.
    for name, grad in before.items():
        assert "lora_A" in name or grad.abs().max() > 0, name
        assert torch.equal(after[name], grad), name
