"""The dataset settings a run carries: RunConfig fields, YAML and the engine's DataSpec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.engine.config import ConfigError, RunConfig
from training.engine.data.records import DataSpec, read_dataset

CSV_SETTINGS = {
    "dataset_format": "csv",
    "dataset_shape": "prompt_completion",
    "dataset_mapping": {"prompt": "question", "completion": "answer"},
    "dataset_text_split": "line",
    "prompt_template": "custom",
    "custom_template": "Q: {instruction}\nA: {output}",
}


def test_dataset_settings_round_trip_through_yaml() -> None:
    config = RunConfig("m", "data.csv", "o", **CSV_SETTINGS)

    again = RunConfig.from_yaml(config.to_yaml())

    assert again == config
    assert DataSpec.from_config(again) == DataSpec(
        format="csv",
        shape="prompt_completion",
        mapping={"prompt": "question", "completion": "answer"},
        template="custom",
        custom_template="Q: {instruction}\nA: {output}",
    )


def test_an_old_yaml_file_without_dataset_settings_reads_alpaca_jsonl() -> None:
    config = RunConfig.from_yaml("model_dir: m\ndataset_path: d.jsonl\noutput_dir: o\n")

    assert DataSpec.from_config(config) == DataSpec()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dataset_format", "xlsx", "expected one of jsonl, json, csv, txt"),
        ("dataset_shape", "table", "expected one of alpaca"),
        ("prompt_template", "llama", "expected one of model, alpaca, custom"),
        ("dataset_mapping", {"prompt": 3}, "expected a mapping of names to column names"),
        ("dataset_mapping", ["prompt"], "expected a mapping of names to column names"),
    ],
)
def test_bad_dataset_settings_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig("m", "d", "o", **{field: value}).validate()

    assert message in info.value.errors[field]


def test_the_spec_from_a_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat is 2 + 2?,4\n", encoding="utf-8")
    config = RunConfig("m", str(path), "o", **CSV_SETTINGS)

    [record] = read_dataset(path, DataSpec.from_config(config))

    assert json.dumps(record.to_dict()["turns"][1]) == '{"role": "assistant", "content": "4"}'


@pytest.mark.slow
@pytest.mark.parametrize(
    ("writer", "overrides"),
    [
        ("write_chat_sample", {"dataset_shape": "messages"}),
        (
            "write_stories_sample",
            {"dataset_format": "txt", "dataset_shape": "text", "dataset_text_split": "blank_line"},
        ),
        (
            "write_sample_dataset",
            {"prompt_template": "custom", "custom_template": "Q: {instruction}\nA: {output}"},
        ),
    ],
)
def test_a_run_trains_on_each_format_and_template(
    model_dir: Path, tiny_config, tmp_path: Path, writer: str, overrides: dict
) -> None:
    from training.engine.data import samples
    from training.engine.train.loop import TrainHooks, train

    dataset = getattr(samples, writer)(tmp_path / "data", n=8)
    logs: list[str] = []

    result = train(
        tiny_config(model_dir, dataset, tmp_path / "out", max_steps=2, **overrides),
        TrainHooks(on_log=logs.append),
    )

    assert result.status == "completed"
    assert any("training examples (0 dropped" in line for line in logs), logs
