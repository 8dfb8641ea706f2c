"""Synthetic instruction data from templates: slots filled from lists or a table of values.

A recipe has an instruction, an optional input and an output template with ``{slot}``
placeholders, and the values of its slots, given two ways that can be combined:

- a table (CSV text, first line the slot names): each generated row takes one table row,
  so values that belong together stay together (``country,capital``);
- lists (``slot: value | value | …`` per line): each slot takes any of its values,
  independently of the others.

Rows are drawn without repetition from every combination, seeded, so the same recipe
and seed give the same dataset; asking for more rows than there are combinations is
refused with how many there are.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

MAX_ROWS = 100_000
MAX_VALUES = 10_000
SLOT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RecipeError(ValueError):
    """A recipe that cannot generate rows; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Recipe:
    instruction: str
    output: str
    input: str = ""
    table: str = ""
    lists: str = ""
    rows: int = 100
    seed: int = 0
    # Parsed values: filled by ``check``.
    table_rows: tuple[dict[str, str], ...] = field(default=(), compare=False)
    list_values: tuple[tuple[str, tuple[str, ...]], ...] = field(default=(), compare=False)


def slots_of(template: str, where: str) -> list[str]:
    """The placeholders of ``template`` in order; RecipeError for a malformed one."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise RecipeError(where, f"{where}: {exc} (write a literal brace as {{{{ or }}}})") from exc
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if not SLOT.match(name) or spec or conversion:
            raise RecipeError(
                where, f"{where}: “{{{name}}}” is not a slot name (letters, digits, _)"
            )
        names.append(name)
    return names


def parse_table(text: str) -> list[dict[str, str]]:
    if not text.strip():
        return []
    reader = csv.reader(io.StringIO(text.strip()))
    header = [h.strip() for h in next(reader)]
    for name in header:
        if not SLOT.match(name):
            raise RecipeError("table", f"table: column “{name}” is not a slot name")
    if len(set(header)) != len(header):
        raise RecipeError("table", "table: a column name appears twice")
    rows = []
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise RecipeError(
                "table", f"table line {number}: {len(values)} values for {len(header)} columns"
            )
        rows.append(dict(zip(header, (v.strip() for v in values), strict=True)))
    if not rows:
        raise RecipeError("table", "table: a header but no rows of values")
    if len(rows) > MAX_VALUES:
        raise RecipeError("table", f"table: more than {MAX_VALUES:,} rows")
    return rows


def parse_lists(text: str) -> list[tuple[str, tuple[str, ...]]]:
    lists = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, values = line.partition(":")
        name = name.strip()
        if not colon or not SLOT.match(name):
            raise RecipeError("lists", f"lists line {number}: write “slot: value | value | …”")
        items = tuple(dict.fromkeys(v.strip() for v in values.split("|") if v.strip()))
        if not items:
            raise RecipeError("lists", f"lists line {number}: no values for “{name}”")
        if len(items) > MAX_VALUES:
            raise RecipeError("lists", f"lists line {number}: more than {MAX_VALUES:,} values")
        if name in {n for n, _ in lists}:
            raise RecipeError("lists", f"lists line {number}: “{name}” is listed twice")
        lists.append((name, items))
    return lists


def check(recipe: Recipe) -> Recipe:
    """The recipe with its values parsed; RecipeError naming the first problem."""
    if not recipe.instruction.strip():
        raise RecipeError("instruction", "instruction: write the instruction template")
    if not recipe.output.strip():
        raise RecipeError("output", "output: write the output template")
    if not 1 <= recipe.rows <= MAX_ROWS:
        raise RecipeError("rows", f"rows: between 1 and {MAX_ROWS:,}")
    table, lists = parse_values(
        recipe.table,
        recipe.lists,
        [("instruction", recipe.instruction), ("input", recipe.input), ("output", recipe.output)],
    )
    possible = combinations(table, lists)
    if recipe.rows > possible:
        raise RecipeError(
            "rows",
            f"rows: these values make only {possible:,} different rows; ask for at most that "
            "many, or add values",
        )
    return Recipe(
        **{k: getattr(recipe, k) for k in ("instruction", "output", "input", "table", "lists")},
        rows=recipe.rows,
        seed=recipe.seed,
        table_rows=tuple(table),
        list_values=tuple(lists),
    )


def parse_values(
    table_text: str, lists_text: str, templates: list[tuple[str, str]]
) -> tuple[list[dict[str, str]], list[tuple[str, tuple[str, ...]]]]:
    """The table and lists parsed, every slot of ``templates`` ((field, text) pairs)
    given values; RecipeError naming the first problem."""
    table = parse_table(table_text)
    lists = parse_lists(lists_text)
    provided = set(table[0]) if table else set()
    both = provided & {name for name, _ in lists}
    if both:
        raise RecipeError("lists", f"“{sorted(both)[0]}” has values in the table and in the lists")
    provided |= {name for name, _ in lists}
    for where, template in templates:
        for name in slots_of(template, where):
            if name not in provided:
                raise RecipeError(
                    where, f"{where}: unknown slot {{{name}}}: give it values in the table or lists"
                )
    return table, lists


def combinations(table: list[dict[str, str]], lists: list[tuple[str, tuple[str, ...]]]) -> int:
    total = max(1, len(table))
    for _name, values in lists:
        total *= len(values)
    return total


def combination(recipe: Recipe, index: int) -> dict[str, str]:
    """The ``index``-th combination (mixed radix: table row, then each list)."""
    values: dict[str, str] = {}
    for name, items in reversed(recipe.list_values):
        index, pick = divmod(index, len(items))
        values[name] = items[pick]
    if recipe.table_rows:
        values.update(recipe.table_rows[index % len(recipe.table_rows)])
    return values


def generate(recipe: Recipe, limit: int | None = None) -> list[dict[str, str]]:
    """Rows (instruction, input, output) of a checked recipe: ``recipe.rows`` distinct
    combinations drawn with its seed (the first ``limit`` only, for a preview)."""
    total = combinations(list(recipe.table_rows), list(recipe.list_values))
    picks = random.Random(recipe.seed).sample(range(total), recipe.rows)
    rows = []
    for index in picks[:limit]:
        values = combination(recipe, index)
        rows.append(
            {
                "instruction": recipe.instruction.format(**values),
                "input": recipe.input.format(**values),
                "output": recipe.output.format(**values),
            }
        )
    return rows


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def describe(recipe: Recipe) -> str:
    """How the dataset was made, for its description."""
    parts = [f"Generated from templates: {recipe.rows:,} rows, seed {recipe.seed}."]
    parts.append(f"Instruction: {recipe.instruction}")
    if recipe.input:
        parts.append(f"Input: {recipe.input}")
    parts.append(f"Output: {recipe.output}")
    if recipe.table_rows:
        parts.append(f"Table: {len(recipe.table_rows)} rows of {', '.join(recipe.table_rows[0])}")
    for name, values in recipe.list_values:
        parts.append(f"{name}: {len(values)} values")
    return "\n".join(parts)
