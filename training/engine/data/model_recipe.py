"""Synthetic instruction data from a model: what to ask it, and which answers to keep.

A model recipe fills an instruction (and optional input) template with slot values as
template recipes do (``synthetic.parse_values``: a table and lists), shows the model a
few seed examples, and keeps the model's replies as the outputs. Replies can be held to
a check (valid JSON, a regex, a length in characters, with the evaluation metrics'
own functions) and duplicates dropped; what is left becomes the dataset.

No torch here: the web process checks recipes; ``inference.synthesize`` generates.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from training.engine.data import synthetic
from training.engine.data.synthetic import RecipeError
from training.engine.evaluate.metrics import (
    MetricError,
    compile_regex,
    normalise_space,
    output_length,
    regex_match,
    valid_json,
)

MAX_ROWS = 2000
MAX_EXAMPLES = 20
MAX_NEW_TOKENS = 1024
CHECKS = ("none", "valid_json", "regex", "length")


@dataclass(frozen=True)
class OutputCheck:
    """What a reply must pass to be kept (``kind`` one of CHECKS)."""

    kind: str = "none"
    regex: str = ""
    min_chars: int | None = None
    max_chars: int | None = None

    def validate(self) -> None:
        if self.kind not in CHECKS:
            raise RecipeError("check", f"check: unknown check “{self.kind}”")
        if self.kind == "regex":
            try:
                compile_regex(self.regex)
            except MetricError as exc:
                raise RecipeError("regex", f"regex: {exc}") from exc
        if self.kind == "length":
            if self.min_chars is None and self.max_chars is None:
                raise RecipeError("min_chars", "length: give a minimum, a maximum or both")
            low, high = self.min_chars or 0, self.max_chars
            if high is not None and high < low:
                raise RecipeError("max_chars", "length: the maximum is below the minimum")

    def passes(self, output: str) -> bool:
        if self.kind == "valid_json":
            return valid_json(output)
        if self.kind == "regex":
            return regex_match(output, self.regex)
        if self.kind == "length":
            length = output_length(output)
            too_short = self.min_chars is not None and length < self.min_chars
            too_long = self.max_chars is not None and length > self.max_chars
            return not (too_short or too_long)
        return True

    def describe(self) -> str:
        if self.kind == "valid_json":
            return "valid JSON"
        if self.kind == "regex":
            return f"matches the regex {self.regex}"
        if self.kind == "length":
            return f"{self.min_chars or 0} to {self.max_chars or 'any number of'} characters"
        return "none"


@dataclass(frozen=True)
class ModelRecipe:
    instruction: str
    input: str = ""
    table: str = ""
    lists: str = ""
    examples: str = ""  # JSON Lines: instruction, optional input, output
    rows: int = 20
    seed: int = 0
    temperature: float = 0.7
    max_new_tokens: int = 128
    check: OutputCheck = field(default_factory=OutputCheck)
    dedupe: bool = True


@dataclass(frozen=True)
class Plan:
    """A checked model recipe: its values and examples parsed."""

    recipe: ModelRecipe
    table: list[dict[str, str]]
    lists: list[tuple[str, tuple[str, ...]]]
    examples: list[dict[str, str]]

    @property
    def combinations(self) -> int:
        return synthetic.combinations(self.table, self.lists)


def parse_examples(text: str) -> list[dict[str, str]]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"examples line {number}"
        try:
            row = json.loads(line)
        except ValueError:
            raise RecipeError(
                "examples",
                f'{where}: not JSON; write {{"instruction": "…", "output": "…"}}',
            ) from None
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) and row[k].strip() for k in ("instruction", "output")
        ):
            raise RecipeError("examples", f"{where}: needs an “instruction” and an “output”")
        if not isinstance(row.get("input", ""), str):
            raise RecipeError("examples", f"{where}: “input” must be text")
        examples.append(
            {
                "instruction": row["instruction"],
                "input": row.get("input", ""),
                "output": row["output"],
            }
        )
    if len(examples) > MAX_EXAMPLES:
        raise RecipeError("examples", f"examples: at most {MAX_EXAMPLES}")
    return examples


def check(recipe: ModelRecipe) -> Plan:
    """The recipe's plan; RecipeError naming the first problem."""
    if not recipe.instruction.strip():
        raise RecipeError("instruction", "instruction: write the instruction template")
    if not 1 <= recipe.rows <= MAX_ROWS:
        raise RecipeError("rows", f"rows: between 1 and {MAX_ROWS:,}")
    if not 0 <= recipe.temperature <= 2:
        raise RecipeError("temperature", "temperature: between 0 and 2")
    if not 1 <= recipe.max_new_tokens <= MAX_NEW_TOKENS:
        raise RecipeError("max_new_tokens", f"max new tokens: between 1 and {MAX_NEW_TOKENS}")
    table, lists = synthetic.parse_values(
        recipe.table,
        recipe.lists,
        [("instruction", recipe.instruction), ("input", recipe.input)],
    )
    plan = Plan(recipe, table, lists, parse_examples(recipe.examples))
    # Greedy replies to the same prompt are the same reply: more rows than prompts
    # would only make duplicates.
    if recipe.temperature == 0 and recipe.rows > plan.combinations:
        raise RecipeError(
            "rows",
            f"rows: these values make only {plan.combinations:,} different prompts; at "
            "temperature 0 each gives one reply, so ask for at most that many, add values "
            "or sample (temperature above 0)",
        )
    recipe.check.validate()
    return plan


def prompts(plan: Plan) -> list[dict[str, str]]:
    """The instruction and input of each row to generate: distinct combinations drawn
    with the seed, every combination once before any comes again."""
    values = synthetic.Recipe(
        instruction=plan.recipe.instruction,
        output="",
        table_rows=tuple(plan.table),
        list_values=tuple(plan.lists),
    )
    rng = random.Random(plan.recipe.seed)
    total = plan.combinations
    picks: list[int] = []
    while len(picks) < plan.recipe.rows:
        picks += rng.sample(range(total), min(total, plan.recipe.rows - len(picks)))
    rows = []
    for index in picks:
        slots = synthetic.combination(values, index)
        rows.append(
            {
                "instruction": plan.recipe.instruction.format(**slots),
                "input": plan.recipe.input.format(**slots),
            }
        )
    return rows


def question(row: dict[str, str]) -> str:
    """What the user turn says: the instruction, and the input below it."""
    return row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")


def messages(row: dict[str, str], examples: list[dict[str, str]], chat: bool) -> list[dict]:
    """The chat the model answers: each seed example as an earlier exchange (``chat``:
    the model's chat template, which renders every turn), else — a single-turn Alpaca
    or custom template — the examples written into the system prompt."""
    if chat:
        turns: list[dict] = []
        for example in examples:
            turns.append({"role": "user", "content": question(example)})
            turns.append({"role": "assistant", "content": example["output"]})
        return [*turns, {"role": "user", "content": question(row)}]
    chat_turns = [{"role": "user", "content": question(row)}]
    if not examples:
        return chat_turns
    shown = "\n\n".join(f"Request: {question(e)}\nAnswer: {e['output']}" for e in examples)
    return [{"role": "system", "content": f"Answer as in these examples.\n\n{shown}"}, *chat_turns]


@dataclass
class Tally:
    generated: int = 0
    kept: int = 0
    duplicates: int = 0
    failed_check: int = 0


class Keeper:
    """Decides, reply by reply, what goes into the dataset: not empty, passes the check,
    and (with ``dedupe``) not the same prompt and reply as a row already kept."""

    def __init__(self, recipe: ModelRecipe) -> None:
        self.recipe = recipe
        self.tally = Tally()
        self.rows: list[dict[str, str]] = []
        self._seen: set[tuple[str, str]] = set()

    def offer(self, prompt: dict[str, str], output: str) -> None:
        self.tally.generated += 1
        if not output.strip() or not self.recipe.check.passes(output):
            self.tally.failed_check += 1
            return
        key = (normalise_space(question(prompt)), normalise_space(output))
        if self.recipe.dedupe and key in self._seen:
            self.tally.duplicates += 1
            return
        self._seen.add(key)
        self.tally.kept += 1
        self.rows.append({**prompt, "output": output})


def describe(plan: Plan, model: str, tally: Tally) -> str:
    """How the dataset was made, for its description."""
    r = plan.recipe
    parts = [
        f"Generated by the model {model}: {tally.kept:,} rows kept of {tally.generated:,} "
        f"generated ({tally.failed_check:,} failed the check, {tally.duplicates:,} duplicates)."
    ]
    parts.append(
        f"Temperature {r.temperature:g}, seed {r.seed}, at most {r.max_new_tokens} new tokens; "
        f"check: {r.check.describe()}; duplicates {'dropped' if r.dedupe else 'kept'}."
    )
    parts.append(f"Instruction: {r.instruction}")
    if r.input:
        parts.append(f"Input: {r.input}")
    if plan.examples:
        parts.append(f"Seed examples: {len(plan.examples)}")
    if plan.table:
        parts.append(f"Table: {len(plan.table)} rows of {', '.join(plan.table[0])}")
    for name, values in plan.lists:
        parts.append(f"{name}: {len(values)} values")
    return "\n".join(parts)
