"""Pretraining on a worker: a pretraining Run's row as the engine's ``pretrain`` call.

The run is claimed, reported, checkpointed, resumed, cancelled and time-limited by
``training.jobs.train`` exactly like a fine-tune; this module only says what the
engine trains: the design snapshotted in the run's config, the tokenizer copied into
the run's folder, the dataset's texts.
"""

from __future__ import annotations

import shutil

from designer.jobs.tokenizer import dataset_texts
from training.engine.design.counts import training_flops_per_token
from training.engine.design.pretrain import PretrainSettings, pretrain
from training.engine.design.spec import Design
from training.engine.train.checkpoint import Checkpoint
from training.engine.train.loop import TrainHooks, TrainResult
from training.models import Run

# Keys of a pretraining run's config that are not PretrainSettings fields.
RUN_KEYS = ("design", "design_name")


def design_of(run: Run) -> Design:
    return Design.from_dict(run.config["design"])


def settings_of(run: Run) -> PretrainSettings:
    fields = {k: v for k, v in run.config.items() if k not in RUN_KEYS}
    return PretrainSettings.from_dict({**fields, "time_limit_s": float(run.time_limit_s)})


def flops_per_token(run: Run) -> int:
    return training_flops_per_token(design_of(run), int(run.config["sequence_length"]))


def copy_tokenizer(run: Run) -> None:
    """The run's own copy of its tokenizer, so deleting the tokenizer later (or training
    it again) never changes what the run trains or what its model reads."""
    if (run.tokenizer_dir / "tokenizer.json").exists():
        return
    if run.tokenizer is None:
        raise ValueError("the run's tokenizer was deleted before the run started")
    run.output_dir.mkdir(parents=True, exist_ok=True)
    partial = run.output_dir / "tokenizer.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(run.tokenizer.folder, partial)
    partial.rename(run.tokenizer_dir)


def pretrain_claimed(
    run: Run,
    hooks: TrainHooks,
    on_sample,
    resume_from: Checkpoint | None,
) -> TrainResult:
    copy_tokenizer(run)
    dataset = run.dataset
    hooks.log("reading the texts…")
    texts = dataset_texts(dataset.file.path, dataset.file_format, dataset.text_split)
    validation = None
    if dataset.validation_file:
        validation = dataset_texts(
            dataset.validation_file.path, dataset.file_format, dataset.text_split
        )
    return pretrain(
        design_of(run),
        run.tokenizer_dir,
        texts,
        run.output_dir,
        settings_of(run),
        validation=validation,
        hooks=hooks,
        on_sample=on_sample,
        resume_from=resume_from,
    )
