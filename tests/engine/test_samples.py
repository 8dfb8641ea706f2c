"""The sample dataset: deterministic, valid, and with held-out evaluation prompts."""

from __future__ import annotations

from pathlib import Path

from training.engine import samples
from training.engine.config import RunConfig
from training.engine.data import read_alpaca_jsonl


def test_it_writes_a_valid_deterministic_dataset(tmp_path: Path) -> None:
    first = samples.write_sample_dataset(tmp_path / "a.jsonl", n=50)
    second = samples.write_sample_dataset(tmp_path / "b.jsonl", n=50)

    rows = read_alpaca_jsonl(first)

    assert first.read_bytes() == second.read_bytes()
    assert len(rows) == 50
    assert all(samples.follows_format(row["output"]) for row in rows)


def test_it_keeps_evaluation_prompts_out_of_the_training_data() -> None:
    seen = {row["instruction"] for row in samples.sample_rows(samples.SAMPLE_DATASET_SIZE)}

    prompts = samples.eval_prompts()

    assert len(prompts) >= 5
    assert not seen & {row["instruction"] for row in prompts}


def test_it_recognises_only_the_exact_answer_format() -> None:
    assert samples.follows_format('{"answer": "42"}')
    assert samples.follows_format('  {"answer": "Seoul"}\n')
    assert not samples.follows_format("The answer is 42.")
    assert not samples.follows_format('{"answer": 42}')
    assert not samples.follows_format('{"answer": "42", "why": "sum"}')
    assert not samples.follows_format('{"answer": "42"} done')
    assert samples.answer_of('{"answer": "42"}') == "42"


def test_it_recommends_settings_that_validate() -> None:
    RunConfig(
        model_dir="m", dataset_path="d", output_dir="o", **samples.SAMPLE_RUN_DEFAULTS
    ).validate()
