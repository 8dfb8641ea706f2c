"""The sample dataset: deterministic, valid, and with held-out evaluation prompts."""

from __future__ import annotations

from pathlib import Path

from tests.engine.helpers import read_alpaca, tokenize_rows
from training.engine.config import RunConfig
from training.engine.data import samples


def test_it_writes_a_valid_deterministic_dataset(tmp_path: Path) -> None:
    first = samples.write_sample_dataset(tmp_path / "a.jsonl", n=50)
    second = samples.write_sample_dataset(tmp_path / "b.jsonl", n=50)

    rows = read_alpaca(first)

    assert first.read_bytes() == second.read_bytes()
    assert len(rows) == 50
    assert all(samples.follows_format(row["output"]) for row in rows)


def test_the_json_answer_sample_has_no_duplicate_rows() -> None:
    rows = samples.sample_rows(samples.SAMPLE_DATASET_SIZE)

    assert len({row["instruction"] for row in rows}) == len(rows) == 240
    kinds = [" + ", " - ", "capital of", "backwards", "capital letters"]
    assert all(kinds[i % 5] in row["instruction"] for i, row in enumerate(rows))


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


def test_every_sample_is_deterministic_valid_and_recognised(tmp_path: Path) -> None:
    from training.engine.data.records import DataSpec, inspect_file, scan_dataset

    for sample in samples.SAMPLES.values():
        first = sample.write(tmp_path / f"a-{sample.key}.{sample.file_format}")
        second = sample.write(tmp_path / f"b-{sample.key}.{sample.file_format}")
        spec = DataSpec(sample.file_format, sample.shape, {}, sample.text_split)

        count, _ = scan_dataset(first, spec)

        assert first.read_bytes() == second.read_bytes(), sample.key
        assert count >= 100, sample.key
        assert inspect_file(first, sample.file_format, sample.text_split).shape == sample.shape


def test_the_chat_sample_has_multi_turn_conversations_with_a_system_prompt() -> None:
    rows = samples.chat_rows()
    turns = [len(row["messages"]) for row in rows]

    assert all(
        row["messages"][0] == {"role": "system", "content": samples.CHAT_SYSTEM} for row in rows
    )
    assert {3, 5} <= set(turns)  # single questions and follow-ups
    follow_up = next(row["messages"] for row in rows if len(row["messages"]) == 5)
    first, second = follow_up[2]["content"], follow_up[4]["content"]
    assert int(second.split()[0]) % int(first.split()[0]) == 0  # the follow-up builds on it


def test_the_stories_sample_trains_every_token_in_windows(tokenizer, tmp_path: Path) -> None:
    from training.engine.data.records import DataSpec, read_dataset

    path = samples.write_stories_sample(tmp_path / "stories.txt", n=5)
    records = read_dataset(path, DataSpec("txt", "text", {}, "blank_line"))

    examples, dropped = tokenize_rows(tokenizer, records, max_seq_len=32)

    assert len(records) == 5 and all(r.text and r.text.startswith("Once upon") for r in records)
    assert dropped == 0 and len(examples) > 5  # each story is longer than one window
    assert all(e["labels"] == e["input_ids"] for e in examples)
