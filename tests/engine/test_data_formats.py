"""Dataset files in every format and shape: reading, recognising, mapping, rejecting."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.engine.data.formats import MAX_JSON_DEPTH, MAX_RECORD_BYTES, format_for_name
from training.engine.data.records import (
    DatasetError,
    DataSpec,
    first_records,
    inspect_file,
    scan_dataset,
)
from training.engine.data.shapes import Record, Turn


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def problems(path: Path, **spec: Any) -> list[str]:
    with pytest.raises(DatasetError) as info:
        scan_dataset(path, DataSpec(**spec))
    return [str(p) for p in info.value.problems]


def records(path: Path, **spec: Any) -> list[Record]:
    return scan_dataset(path, DataSpec(**spec))[1]


CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "See you."},
    ]
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.jsonl", "jsonl"), ("a.NDJSON", "jsonl"), ("a.json", "json"), ("b.CSV", "csv"),
     ("c.txt", "txt"), ("d.parquet", None), ("noext", None)],
)  # fmt: skip
def test_it_knows_formats_by_file_name(name: str, expected: str | None) -> None:
    assert format_for_name(name) == expected


# --- Recognising shapes ---


@pytest.mark.parametrize(
    ("fmt", "content", "shape", "mapping"),
    [
        ("jsonl", '{"instruction": "a", "input": "", "output": "b"}\n', "alpaca", {}),
        ("jsonl", json.dumps(CHAT) + "\n", "messages", {}),
        ("json", json.dumps([{"conversations": [{"from": "human", "value": "x"}]}]),
         "sharegpt", {}),
        ("jsonl", '{"prompt": "a", "completion": "b"}\n', "prompt_completion", {}),
        ("csv", "question,answer\nq,a\n", "prompt_completion",
         {"prompt": "question", "completion": "answer"}),
        ("jsonl", '{"query": "a", "response": "b"}\n', "prompt_completion",
         {"prompt": "query", "completion": "response"}),
        ("jsonl", '{"text": "a story"}\n', "text", {}),
        ("csv", "id,content\n1,a story\n", "text", {"text": "content"}),
        ("txt", "a line\nanother\n", "text", {}),
        ("jsonl", '{"foo": "a", "bar": "b"}\n', None, {}),
    ],
)  # fmt: skip
def test_it_recognises_shapes_from_the_first_rows(
    tmp_path: Path, fmt: str, content: str, shape: str | None, mapping: dict[str, str]
) -> None:
    inspection = inspect_file(write(tmp_path, f"data.{fmt}", content), fmt)

    assert (inspection.shape, inspection.mapping) == (shape, mapping)


def test_it_lists_columns_for_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "q,a,notes\nx,y,z\n")

    assert inspect_file(path, "csv").columns == ["q", "a", "notes"]


# --- Reading each shape ---


def test_it_reads_a_multi_turn_chat_with_its_system_prompt(tmp_path: Path) -> None:
    [record] = records(write(tmp_path, "chat.jsonl", json.dumps(CHAT)), shape="messages")

    assert record.system == "Be brief."
    assert record.turns == [
        Turn("user", "Hi"),
        Turn("assistant", "Hello!"),
        Turn("user", "Bye"),
        Turn("assistant", "See you."),
    ]
    assert not record.is_single_turn


def test_it_reads_sharegpt_roles(tmp_path: Path) -> None:
    row = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
    [record] = records(write(tmp_path, "c.jsonl", json.dumps(row)), shape="sharegpt")

    assert record.turns == [Turn("user", "Hi"), Turn("assistant", "Yo")]
    assert record.fields["instruction"] == "Hi" and record.fields["output"] == "Yo"


def test_it_maps_arbitrary_csv_columns_including_quoted_newlines(tmp_path: Path) -> None:
    path = write(tmp_path, "qa.csv", 'id,question,answer\n1,"two\nlines","yes, really"\n2,b,c\n')

    rows = records(
        path,
        format="csv",
        shape="prompt_completion",
        mapping={"prompt": "question", "completion": "answer"},
    )

    assert [r.turns for r in rows] == [
        [Turn("user", "two\nlines"), Turn("assistant", "yes, really")],
        [Turn("user", "b"), Turn("assistant", "c")],
    ]
    assert rows[0].fields["id"] == "1"  # every column is a placeholder for custom templates


def test_it_reads_a_messages_column_of_a_csv_as_json(tmp_path: Path) -> None:
    cell = json.dumps(CHAT["messages"]).replace('"', '""')
    path = write(tmp_path, "chat.csv", f'messages\n"{cell}"\n')

    [record] = records(path, format="csv", shape="messages")

    assert len(record.turns) == 4


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ("line", ["one", "two", "three", "four"]),
        ("blank_line", ["one", "two\nthree", "four"]),
    ],
)
def test_it_splits_text_by_line_or_by_blank_line(
    tmp_path: Path, split: str, expected: list[str]
) -> None:
    path = write(tmp_path, "corpus.txt", "one\n\ntwo\r\nthree\n\n \n\nfour")

    rows = records(path, format="txt", shape="text", text_split=split)

    assert [r.text for r in rows] == expected


def test_it_streams_a_json_array_item_by_item(tmp_path: Path) -> None:
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(1000)]
    path = write(tmp_path, "data.json", json.dumps(rows))

    count, first = scan_dataset(path, DataSpec(format="json"), keep=2)

    assert count == 1000
    assert [r.fields["output"] for r in first] == ["a0", "a1"]


# --- Precise errors ---


def test_it_reports_json_array_items_by_number_and_field(tmp_path: Path) -> None:
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": 5}, "x"]
    path = write(tmp_path, "data.json", json.dumps(rows))

    assert problems(path, format="json") == [
        'item 2: field "output": expected a string, got number',
        "item 3: expected a JSON object, got string",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": 1}', "expected a JSON array of objects at the top level, got an object"),
        ('[{"instruction": "a", "output": "b"}', "not valid JSON (premature EOF)"),
        ('[{"a": 1, b: 2}]', 'not valid JSON (invalid char in json text) near: [{"a": 1, b: 2}]'),
        ("[" * 100_000 + "]" * 100_000, f"nested more than {MAX_JSON_DEPTH} levels deep"),
        ("[]", "file is empty: expected a JSON array with at least one item"),
    ],
)
def test_it_rejects_broken_json_files_clearly(tmp_path: Path, content: str, expected: str) -> None:
    [problem] = problems(write(tmp_path, "data.json", content), format="json")

    assert expected in problem


def test_it_reports_chat_problems_with_the_path_to_the_field(tmp_path: Path) -> None:
    lines = [
        {"messages": [{"role": "bot", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "assistant", "content": "first"}]},
        {"messages": "hello"},
    ]
    path = write(tmp_path, "chat.jsonl", "\n".join(json.dumps(x) for x in lines))

    assert problems(path, shape="messages") == [
        'line 1: field "messages[0].role": expected one of assistant, system, user, got "bot"',
        'line 2: field "messages[0].content": expected a string, got number',
        'line 3: field "messages": expected at least one non-empty assistant turn to learn from',
        'line 4: field "messages[0].role": expected the first turn to be the user\'s',
        'line 5: field "messages": expected a list of messages (a JSON array), '
        "got text that is not JSON",
    ]


def test_it_names_the_mapped_column_when_it_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "qa.csv", "question,reply\nq,a\n")

    assert problems(
        path,
        format="csv",
        shape="prompt_completion",
        mapping={"prompt": "question", "completion": "answer"},
    ) == ['line 2: field "answer": missing: expected a string']


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a,b\n1,2\n3\n", ["line 3: expected 2 columns (as in the header), got 1"]),
        ("a,,b\n1,2,3\n", ["line 1: the header's column 2 has no name"]),
        ("a,a\n1,2\n", ['line 1: the header names column "a" twice']),
        ("", ["file: file is empty: expected a header row and at least one row of data"]),
        ("a,b\n", ["file: file is empty: expected a header row and at least one row of data"]),
        ('a,b\n"unclosed,2\n', ["line 2: not valid CSV (unexpected end of data)"]),
    ],
)
def test_it_rejects_broken_csv_files_clearly(
    tmp_path: Path, content: str, expected: list[str]
) -> None:
    path = write(tmp_path, "data.csv", content)

    assert problems(path, format="csv", shape="text", mapping={"text": "a"}) == expected


def test_it_rejects_a_csv_field_over_the_field_size_limit(tmp_path: Path) -> None:
    # The csv module's default limit is 128 KiB: one over it is accepted, one over
    # the 8 MB per-sample limit is refused without holding it.
    ok = "x" * (200 * 1024)
    path = write(tmp_path, "big.csv", f'text\n"{ok}"\n"{"y" * (MAX_RECORD_BYTES + 10)}"\n')

    assert problems(path, format="csv", shape="text") == [
        "line 3: longer than the 8 MB limit for one sample"
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt"])
def test_it_rejects_a_50_mb_single_line_without_reading_it_whole(tmp_path: Path, fmt: str) -> None:
    head = {"jsonl": '{"text": "ok"}\n', "csv": "text\nok\n", "txt": "ok\n"}[fmt]
    path = tmp_path / f"long.{fmt}"
    with path.open("w") as out:
        out.write(head)
        for _ in range(50):
            out.write("z" * 2**20)
        out.write("\n")

    found = problems(path, format=fmt, shape="text")

    line = 3 if fmt == "csv" else 2  # after the header
    assert found == [f"line {line}: longer than the 8 MB limit for one sample"]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "txt"])
def test_it_refuses_utf16_and_accepts_a_utf8_byte_order_mark(tmp_path: Path, fmt: str) -> None:
    content = {
        "jsonl": '{"text": "hi"}\n',
        "json": '[{"text": "hi"}]',
        "csv": "text\nhi\n",
        "txt": "hi\n",
    }[fmt]
    utf16 = write(tmp_path, f"u16.{fmt}", content.encode("utf-16"))
    bom = write(tmp_path, f"bom.{fmt}", b"\xef\xbb\xbf" + content.encode())

    assert problems(utf16, format=fmt, shape="text") == [
        "file: the file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8"
    ]
    assert [r.text for r in records(bom, format=fmt, shape="text")] == ["hi"]


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("txt", b"ok\nbad \xff byte\n", "line 2: not valid UTF-8 (byte 5)"),
        ("csv", b"text\nok\n\xc3\n", "line 3: not valid UTF-8 (byte 1)"),
        ("txt", b"ok\nnul\x00\n", "line 2: contains a NUL byte at column 4"),
        ("csv", b"text\na\x00b\n", "line 2: contains a NUL byte at column 2"),
        ("jsonl", b'{"text": "a\x00"}\n', "line 1: not valid JSON (Invalid control character"),
        ("json", b'[{"text": "\xff"}]', "not valid JSON (invalid bytes in UTF8 string)"),
    ],
)
def test_it_rejects_invalid_utf8_and_nul_bytes_with_their_line(
    tmp_path: Path, fmt: str, content: bytes, expected: str
) -> None:
    [problem] = problems(write(tmp_path, f"data.{fmt}", content), format=fmt, shape="text")

    assert expected in problem


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"shape": "tabular"}, 'unknown shape "tabular"'),
        ({"mapping": {"answer": "x"}}, '"answer" is not a field of shape alpaca'),
        ({"format": "txt"}, "a .txt file holds plain text"),
        ({"template": "custom", "custom_template": "{instruction}"}, "{output} exactly once"),
        ({"template": "custom", "custom_template": "{output"}, "braces do not match"),
        ({"template": "custom", "custom_template": "{a.b} {output}"}, "is not a placeholder"),
    ],
)
def test_it_rejects_settings_that_cannot_work_as_a_whole_file_problem(
    tmp_path: Path, spec: dict[str, Any], expected: str
) -> None:
    path = write(tmp_path, "data.jsonl", '{"instruction": "a", "output": "b"}\n')

    [problem] = problems(path, **spec)

    assert problem.startswith("file: ") and expected in problem


def test_it_reports_an_unknown_placeholder_with_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"instruction": "a", "output": "b", "topic": "t"}\n')

    assert problems(path, template="custom", custom_template="{question} {output}") == [
        "line 1: unknown placeholder {question}: this row has {input}, {instruction}, "
        "{output}, {system}, {topic}"
    ]


def test_it_refuses_single_turn_templates_for_multi_turn_chats(tmp_path: Path) -> None:
    path = write(tmp_path, "chat.jsonl", json.dumps(CHAT))

    assert problems(path, shape="messages", template="alpaca") == [
        "line 1: the alpaca template needs one prompt and one answer, but this conversation "
        "has 4 turns: use the model's chat template"
    ]


def test_first_records_stops_at_the_first_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"instruction": "a", "output": "b"}\n{"x": 1}\n')

    assert len(first_records(path, DataSpec(), 1)) == 1
    with pytest.raises(DatasetError, match='line 2: field "instruction"'):
        first_records(path, DataSpec(), 5)


# --- Hostile input, generated ---

SPECS = [
    DataSpec(),
    DataSpec(format="json"),
    DataSpec(format="csv", shape="prompt_completion", mapping={"prompt": "a", "completion": "b"}),
    DataSpec(format="csv", shape="messages"),
    DataSpec(format="txt", shape="text"),
    DataSpec(format="txt", shape="text", text_split="blank_line"),
    DataSpec(shape="messages", template="custom", custom_template="{instruction}{output}"),
    DataSpec(shape="sharegpt", template="alpaca"),
]
FUZZ = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def check_only_dataset_errors(content: bytes, spec: DataSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz.{spec.format}"
        path.write_bytes(content)
        try:
            count, rows = scan_dataset(path, spec)
        except DatasetError as exc:
            assert exc.problems and exc.total >= len(exc.problems)
            assert all(str(p) for p in exc.problems)
        else:
            assert count == len(rows) >= 1
            assert all(r.text is not None or r.turns for r in rows)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(SPECS))
def test_arbitrary_bytes_give_only_dataset_errors(content: bytes, spec: DataSpec) -> None:
    check_only_dataset_errors(content, spec)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
turn = st.dictionaries(
    st.sampled_from(["role", "content", "from", "value"]),
    st.sampled_from(["user", "assistant", "system", "human", "gpt", "bot", ""]) | json_values,
)
row = st.dictionaries(
    st.sampled_from(["messages", "conversations", "instruction", "output", "text", "system"]),
    st.lists(turn, max_size=4) | json_values,
)


@FUZZ
@given(st.lists(row | json_values, min_size=1, max_size=5), st.sampled_from(SPECS[:2] + SPECS[6:]))
def test_arbitrary_json_rows_give_only_dataset_errors_with_valid_positions(
    values: list[Any], spec: DataSpec
) -> None:
    if spec.format == "json":
        content = json.dumps(values)
    else:
        content = "\n".join(json.dumps(v) for v in values)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz.{spec.format}"
        path.write_text(content, encoding="utf-8")
        try:
            scan_dataset(path, spec)
        except DatasetError as exc:
            assert all(p.line is None or 1 <= p.line <= len(values) for p in exc.problems)


cell = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30)


@FUZZ
@given(st.lists(st.tuples(cell, cell), min_size=1, max_size=8))
def test_csv_rows_read_back_exactly_as_written(rows: list[tuple[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["q", "a"])
    writer.writerows(rows)
    spec = DataSpec(
        format="csv", shape="prompt_completion", mapping={"prompt": "q", "completion": "a"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        try:
            _, read = scan_dataset(path, spec)
        except DatasetError as exc:
            # Only rows with a blank prompt or answer, or no rows at all, may be refused.
            messages = [p.message for p in exc.problems]
            assert all("non-empty" in m or "file is empty" in m for m in messages)
            return
    kept = [(q, a) for q, a in rows if q.strip() or a.strip()]
    assert [(r.fields["prompt"], r.fields["completion"]) for r in read] == kept


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_it_refuses_an_escaped_nul_that_a_database_would_choke_on(tmp_path: Path, fmt: str) -> None:
    row = '{"instruction": "a\\u0000b", "output": "c"}'
    content = row if fmt == "jsonl" else f"[{row}]"
    unit = "line" if fmt == "jsonl" else "item"

    assert problems(write(tmp_path, f"nul.{fmt}", content), format=fmt) == [
        f'{unit} 1: field "instruction": contains a NUL character (\\u0000) at position 2'
    ]


def test_it_refuses_a_json_number_too_big_for_a_float(tmp_path: Path) -> None:
    path = write(
        tmp_path, "big.json", '[{"instruction": "a", "output": "b", "n": ' + "9" * 5000 + "}]"
    )

    [problem] = problems(path, format="json")

    assert problem.startswith("file: not valid JSON (integer overflow)")


def test_a_50_mb_json_string_is_refused_without_being_held(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "long.json"
    with path.open("w") as out:
        out.write('[{"instruction": "a", "output": "b"}, {"instruction": "')
        for _ in range(50):
            out.write("z" * 2**20)
        out.write('", "output": "b"}]')

    tracemalloc.start()
    found = problems(path, format="json")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert found == ["item 2: longer than the 8 MB limit for one sample"]
    assert peak < 20 * 2**20
