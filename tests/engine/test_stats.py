import math

import pytest

from tests.engine.helpers import read_alpaca, tokenize_example, tokenize_rows
from training.engine.data.records import DataSpec
from training.engine.data.split import split_indices, split_rows, validation_count
from training.engine.data.stats import bucket_width, dataset_pairs, dataset_stats
from training.engine.data.tokenize import IGNORE_INDEX

M = IGNORE_INDEX


def example(prompt: int, answer: int) -> dict[str, list[int]]:
    """``prompt`` masked tokens, then ``answer`` trained ones."""
    return {
        "input_ids": list(range(prompt + answer)),
        "labels": [M] * prompt + list(range(answer)),
    }


def row(instruction: str, output: str, input: str = "") -> dict[str, str]:
    return {"instruction": instruction, "input": input, "output": output}


KNOWN = [
    (row("a", "x"), example(3, 2)),  # 5 tokens
    (row("b", "y", "ctx"), example(4, 6)),  # 10
    (row("a", "x"), example(3, 2)),  # duplicate of the first: 5
    (row("c", "  "), example(8, 4)),  # 12: truncated at 10, keeps 2 of its 4 trained tokens
    (row("d", "z"), example(11, 9)),  # 20: truncated at 10, no trained token left
]


def test_it_counts_everything_on_a_dataset_with_known_content():
    stats = dataset_stats(KNOWN, max_len=10)
    assert stats["rows"] == 5
    assert stats["max_len"] == 10
    assert stats["lengths"] == {"min": 5, "median": 10, "p95": 20, "max": 20, "mean": 10.4}
    assert stats["truncated"] == 2
    assert stats["truncated_share"] == pytest.approx(0.4)
    assert stats["dropped"] == 1
    assert stats["tokens"] == 5 + 10 + 5 + 10 + 10
    # The first position is never predicted, so a row's first label never counts.
    assert stats["trained_tokens"] == 2 + 6 + 2 + 2 + 0
    assert stats["empty_fields"] == {"instruction": 0, "input": 4, "output": 1}
    assert stats["duplicates"] == 1
    assert stats["histogram"] == {
        "width": 1,
        "counts": [0] * 5 + [2] + [0] * 4 + [1] + [0] + [1] + [0] * 7 + [1],
    }


def test_the_histogram_spans_the_max_length_even_when_every_row_is_shorter():
    stats = dataset_stats(KNOWN[:1], max_len=1000)
    width = stats["histogram"]["width"]
    assert width == 50
    assert len(stats["histogram"]["counts"]) == 1  # rows only reach bucket 0 …
    assert stats["truncated"] == 0
    assert bucket_width(1000) * 24 > 1000  # … and the chart's axis reaches 1000


@pytest.mark.parametrize(
    ("upper", "width"), [(0, 1), (23, 1), (24, 2), (47, 2), (48, 5), (512, 50), (4096, 200)]
)
def test_bucket_widths_are_round_and_cover_the_range_in_24_buckets(upper, width):
    assert bucket_width(upper) == width
    assert (upper + 1) / width <= 24


def test_whitespace_is_not_a_duplicate_but_an_identical_row_is():
    pairs = [(row("a", "x"), example(1, 2)), (row("a ", "x"), example(1, 2))]
    assert dataset_stats(pairs, 8)["duplicates"] == 0
    assert dataset_stats(pairs + pairs[:1] * 3, 8)["duplicates"] == 3


def test_fields_that_are_not_text_count_as_empty_when_they_hold_nothing():
    chats = [
        ({"messages": [], "system": None}, example(1, 2)),
        ({"messages": [{"role": "user", "content": "hi"}], "system": "be brief"}, example(1, 2)),
        ({"messages": [{"role": "user", "content": "hi"}], "system": "be brief"}, example(1, 2)),
    ]
    stats = dataset_stats(chats, 8)
    assert stats["empty_fields"] == {"messages": 1, "system": 1}
    assert stats["duplicates"] == 1


def test_it_reports_progress_and_refuses_nothing_to_count():
    seen: list[int] = []
    dataset_stats(iter([KNOWN[0]] * 2500), 8, on_progress=seen.append)
    assert seen == [1000, 2000]
    with pytest.raises(ValueError, match="at least one row"):
        dataset_stats([], 8)
    with pytest.raises(ValueError, match="max_len"):
        dataset_stats(KNOWN, 0)


def test_real_token_lengths_match_what_training_keeps(tokenizer, sample_dataset):

    rows = read_alpaca(sample_dataset)
    max_len = 48
    stats = dataset_stats(dataset_pairs(sample_dataset, DataSpec(), tokenizer), max_len)
    full = [len(tokenize_example(tokenizer, r, 10**9)["input_ids"]) for r in rows]
    examples, dropped = tokenize_rows(tokenizer, rows, max_len)
    assert stats["rows"] == len(rows)
    assert stats["lengths"]["max"] == max(full)
    assert stats["truncated"] == sum(n > max_len for n in full) > 0
    assert stats["dropped"] == dropped
    assert stats["tokens"] == sum(min(n, max_len) for n in full)
    assert stats["trained_tokens"] == sum(
        sum(1 for label in e["labels"][1:] if label != M) for e in examples
    )


def test_plain_text_is_cut_into_windows_like_training_not_truncated(tokenizer):
    from training.engine.data.shapes import Record

    records = [Record(text="word " * 60), Record(text="short"), Record(text="word " * 60)]
    max_len = 16
    pairs = []
    for record in records:
        (whole,) = tokenize_rows(tokenizer, [record], 10**9)[0]
        pairs.append(({"text": record.text}, {**whole, "windowed": True}))
    examples, dropped = tokenize_rows(tokenizer, records, max_len)  # what training gets

    stats = dataset_stats(pairs, max_len)

    assert stats["truncated"] == 0 and stats["truncated_share"] == 0
    assert stats["windowed"] == 2 and stats["dropped"] == dropped == 0
    assert stats["tokens"] == sum(len(e["input_ids"]) for e in examples)
    assert stats["trained_tokens"] == sum(
        sum(1 for label in e["labels"][1:] if label != M) for e in examples
    )
    assert stats["duplicates"] == 1


# --- Split ---


def test_a_split_is_seeded_disjoint_complete_and_sized_by_the_ratio():
    train, val = split_indices(100, 0.2, seed=7)
    assert len(val) == 20 and len(train) == 80
    assert sorted(train + val) == list(range(100))
    assert split_indices(100, 0.2, seed=7) == (train, val)
    assert split_indices(100, 0.2, seed=8)[1] != val
    assert val == sorted(val)


def test_a_positive_ratio_holds_out_at_least_one_row_and_never_all():
    assert len(split_indices(10, 0.01, 0)[1]) == 1
    assert len(split_indices(2, 0.9, 0)[0]) == 1
    assert split_indices(1, 0.5, 0) == ([0], [])
    assert split_indices(10, 0, 0) == (list(range(10)), [])
    for n in range(0, 40, 3):
        for ratio in (0, 0.01, 0.25, 0.5):
            assert validation_count(n, ratio) == len(split_indices(n, ratio, 5)[1])
    for bad in (-0.1, 1, 1.5, math.nan):
        with pytest.raises(ValueError, match="val_ratio"):
            split_indices(10, bad, 0)


def test_split_rows_keeps_file_order():
    rows = [f"r{i}" for i in range(10)]
    train, val = split_rows(rows, 0.3, seed=1)
    assert len(val) == 3
    assert train == [r for r in rows if r not in val]
    assert val == sorted(val, key=rows.index)
