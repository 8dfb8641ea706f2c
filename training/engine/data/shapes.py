"""Dataset shapes: recognising them, mapping columns, normalising rows to records.

Every row becomes a :class:`Record`: a conversation (optional system text and
user/assistant turns) or a plain-text sample. ``fields`` keeps the single-turn
values by name (instruction, input, output, system, and every string column of
the source row) for the Alpaca and custom templates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from training.engine.data.formats import Problem

# shape -> its fields, required ones first
SHAPE_FIELDS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "output", "input", "system"),
    "prompt_completion": ("prompt", "completion", "system"),
    "messages": ("messages",),
    "sharegpt": ("conversations", "system"),
    "text": ("text",),
}
SHAPES = tuple(SHAPE_FIELDS)
# Column names other tools use for a prompt and its answer, in order of preference.
PROMPT_ALIASES = ("prompt", "question", "query", "input", "instruction", "human", "user")
ANSWER_ALIASES = ("completion", "response", "answer", "output", "gpt", "assistant", "chosen")
TEXT_ALIASES = ("text", "content", "document", "body")
ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant"}
SHAREGPT_ROLES["assistant"] = "assistant"


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass
class Record:
    """One training sample: a conversation, or plain text when ``text`` is set."""

    turns: list[Turn] = field(default_factory=list)
    system: str = ""
    text: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"fields": self.fields}
        if self.text is not None:
            data["text"] = self.text
        else:
            data["system"] = self.system
            data["turns"] = [{"role": t.role, "content": t.content} for t in self.turns]
        return data

    @property
    def is_single_turn(self) -> bool:
        return "instruction" in self.fields and "output" in self.fields


class MappingError(ValueError):
    """A shape or column mapping that cannot apply; the message says what to fix."""


def check_mapping(shape: str, mapping: dict[str, str]) -> None:
    if shape not in SHAPE_FIELDS:
        raise MappingError(f'unknown shape "{shape}": expected one of {", ".join(SHAPES)}')
    for target, source in mapping.items():
        if target not in SHAPE_FIELDS[shape]:
            allowed = ", ".join(SHAPE_FIELDS[shape])
            raise MappingError(f'"{target}" is not a field of shape {shape} (fields: {allowed})')
        if not isinstance(source, str) or not source.strip():
            raise MappingError(f'the column mapped to "{target}" has no name')


def detect_shape(rows: Iterable[Any]) -> tuple[str, dict[str, str]] | None:
    """The shape and column mapping the first rows fit, or None when nothing fits.

    ``rows`` are raw parsed rows (dicts for JSON and CSV, strings for text files).
    A key counts when every sampled row has it.
    """
    rows = list(rows)
    if not rows:
        return None
    if all(isinstance(r, str) for r in rows):
        return "text", {}
    if not all(isinstance(r, dict) for r in rows):
        return None
    keys = set.intersection(*(set(r) for r in rows))
    if "messages" in keys:
        return "messages", {}
    if "conversations" in keys:
        return "sharegpt", {}
    if {"instruction", "output"} <= keys:
        return "alpaca", {}
    if {"prompt", "completion"} <= keys:
        return "prompt_completion", {}
    prompt = next((k for k in PROMPT_ALIASES if k in keys), None)
    answer = next((k for k in ANSWER_ALIASES if k in keys and k != prompt), None)
    if prompt and answer:
        return "prompt_completion", {"prompt": prompt, "completion": answer}
    text = next((k for k in TEXT_ALIASES if k in keys), None)
    if text:
        return "text", {} if text == "text" else {"text": text}
    if "instruction" in keys:  # Alpaca with a field missing: validation names it by line
        return "alpaca", {}
    return None


def columns_of(rows: Iterable[Any]) -> list[str]:
    """Column names in first-seen order, for the mapping form."""
    seen: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            for key in row:
                seen.setdefault(str(key), None)
    return list(seen)


def normalise(
    value: Any, shape: str, mapping: dict[str, str], line: int, unit: str = "line"
) -> tuple[Record | None, list[Problem]]:
    """One raw row as a :class:`Record`, or the problems that stop it being one."""
    problems: list[Problem] = []

    def problem(field_name: str | None, message: str) -> None:
        problems.append(Problem(line, field_name, message, unit))

    if shape == "text" and isinstance(value, str):
        return _text_record(value, None, problem), problems
    if not isinstance(value, dict):
        problem(None, f"expected a JSON object, got {json_type_name(value)}")
        return None, problems
    get = _Getter(value, mapping, problem)
    if shape == "text":
        return _text_record(get.string("text", required=True), get.col("text"), problem), problems
    system = get.string("system", required=False) if "system" in SHAPE_FIELDS[shape] else ""
    if shape in ("alpaca", "prompt_completion"):
        first, second = ("instruction", "output") if shape == "alpaca" else ("prompt", "completion")
        prompt = get.string(first, required=True)
        answer = get.string(second, required=True)
        extra = get.string("input", required=False) if shape == "alpaca" else ""
        if problems or prompt is None or answer is None:
            return None, problems
        user = prompt + ("\n\n" + extra if extra else "")
        fields = {**_string_columns(value), "instruction": prompt, "input": extra or ""}
        fields.update({"output": answer, "system": system or ""})
        if shape == "prompt_completion":
            fields.update({"prompt": prompt, "completion": answer})
        turns = [Turn("user", user), Turn("assistant", answer)]
        return Record(turns, system or "", None, fields), problems
    key = "messages" if shape == "messages" else "conversations"
    record = _conversation(value, get.col(key), shape, system or "", problem)
    if record is not None:
        record.fields = {**_string_columns(value), **record.fields}
    return (None if problems else record), problems


class _Getter:
    def __init__(self, value: dict[str, Any], mapping: dict[str, str], problem: Any) -> None:
        self.value, self.mapping, self.problem = value, mapping, problem

    def col(self, name: str) -> str:
        return self.mapping.get(name) or name

    def string(self, name: str, required: bool) -> str | None:
        col = self.col(name)
        if col not in self.value or (not required and self.value[col] in (None, "")):
            if required:
                self.problem(col, "missing: expected a string")
            return None
        item = self.value[col]
        if not isinstance(item, str):
            self.problem(col, f"expected a string, got {json_type_name(item)}")
            return None
        if required and not item.strip():
            self.problem(col, 'expected a non-empty string, got ""')
            return None
        bad = text_problem(item)
        if bad:
            self.problem(col, bad)
            return None
        return item


def _text_record(text: str | None, col: str | None, problem: Any) -> Record | None:
    if text is None:
        return None
    if not text.strip():
        problem(col, "expected non-empty text")
        return None
    bad = text_problem(text)
    if bad:
        problem(col, bad)
        return None
    return Record(text=text, fields={"text": text})


def _conversation(
    value: dict[str, Any], col: str, shape: str, system: str, problem: Any
) -> Record | None:
    if col not in value:
        problem(col, "missing: expected a list of messages")
        return None
    items = value[col]
    if isinstance(items, str):  # a CSV cell holding JSON
        try:
            items = json.loads(items)
        except (ValueError, RecursionError):
            problem(col, "expected a list of messages (a JSON array), got text that is not JSON")
            return None
    if not isinstance(items, list) or not items:
        problem(col, f"expected a non-empty list of messages, got {json_type_name(items)}")
        return None
    role_key, text_key = ("role", "content") if shape == "messages" else ("from", "value")
    roles = ROLES if shape == "messages" else SHAREGPT_ROLES
    turns: list[Turn] = []
    for i, item in enumerate(items):
        where = f"{col}[{i}]"
        if not isinstance(item, dict):
            problem(where, f"expected an object with {role_key} and {text_key}")
            return None
        role, content = item.get(role_key), item.get(text_key)
        if not isinstance(role, str) or role not in roles:
            allowed = ", ".join(sorted(roles))
            got = json.dumps(role)[:40] if role is not None else "nothing"
            problem(f"{where}.{role_key}", f"expected one of {allowed}, got {got}")
            return None
        if not isinstance(content, str):
            problem(f"{where}.{text_key}", f"expected a string, got {json_type_name(content)}")
            return None
        if text_problem(content):
            problem(f"{where}.{text_key}", text_problem(content))
            return None
        role = roles[role]
        if role == "system":
            if turns or system:
                problem(f"{where}.{role_key}", "a system message must come first")
                return None
            system = content
            continue
        if not turns and role != "user":
            problem(f"{where}.{role_key}", "expected the first turn to be the user's")
            return None
        turns.append(Turn(role, content))
    if not any(t.role == "assistant" and t.content.strip() for t in turns):
        problem(col, "expected at least one non-empty assistant turn to learn from")
        return None
    fields = {"system": system}
    if [t.role for t in turns] == ["user", "assistant"]:
        fields.update(instruction=turns[0].content, input="", output=turns[1].content)
    return Record(turns, system, None, fields)


def _string_columns(value: dict[str, Any]) -> dict[str, str]:
    return {str(k): v for k, v in value.items() if isinstance(v, str) and not text_problem(v)}


def text_problem(text: str) -> str | None:
    """Why a parsed string cannot be trained on, or None.

    JSON accepts escapes that decode to text a tokenizer or a database cannot take:
    lone surrogates like "\\ud800", and NUL ("\\u0000"), which PostgreSQL's jsonb refuses.
    """
    if not is_encodable(text):
        return "contains an invalid unicode escape"
    if "\x00" in text:
        return f"contains a NUL character (\\u0000) at position {text.index(chr(0)) + 1}"
    return None


def is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages a user understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
