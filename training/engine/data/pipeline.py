"""A run's data, stage by stage: read and validate, split, then tokenize and mask.

Reading happens before the model loads, so a bad file fails a run at once; tokenizing
needs the model's tokenizer, so it comes after.
"""

from __future__ import annotations

from typing import Any

from training.engine.config import RunConfig
from training.engine.data.records import DataSpec, read_dataset
from training.engine.data.shapes import Record
from training.engine.data.split import split_rows
from training.engine.data.tokenize import Example, tokenize_records


def records_for_run(config: RunConfig) -> tuple[list[Record], list[Record]]:
    """(training records, validation records): the validation file, or the seeded share.

    The share is drawn by :func:`.split.split_rows`, as the dataset page counts it, so a
    run holds out exactly the rows the page shows.
    """
    spec = DataSpec.from_config(config)
    rows = read_dataset(config.dataset_path, spec)
    if config.validation_path:
        return rows, read_dataset(config.validation_path, spec)
    if config.validation_ratio > 0:
        return split_rows(rows, config.validation_ratio, config.split_seed)
    return rows, []


def examples_for_run(
    tokenizer: Any, records: list[Record], config: RunConfig
) -> tuple[list[Example], int]:
    """Training examples rendered with the run's template and cut to its max length, and
    how many were dropped for having no trained token left."""
    return tokenize_records(
        tokenizer,
        records,
        config.max_seq_len,
        config.train_on_prompt,
        config.prompt_template,
        config.custom_template,
    )
