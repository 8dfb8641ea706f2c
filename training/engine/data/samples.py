"""Sample datasets written by code: deterministic, offline, and quick to learn.

The "JSON answer" task asks small factual/arithmetic questions and always answers
with exactly ``{"answer": "..."}``. The bundled SmolLM2-135M-Instruct answers in
free prose before tuning, so format-following is a clear, measurable change after
a few minutes of CPU training.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.engine.data import task_samples
from training.engine.design import corpus

SAMPLE_SEED = 1234

# Measured on a 2-core CPU: 40 steps of 4-bit NF4 QLoRA train in about a minute
# (~100-140 real tokens/s, loss 4.4 -> ~0.3-0.5) and every held-out prompt then gets
# a well-formed {"answer": ...} reply, against none from the base model.
SAMPLE_RUN_DEFAULTS: dict[str, Any] = {
    "quantization": "4bit",
    "quant_type": "nf4",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": "all-linear",
    "learning_rate": 1e-3,
    "max_steps": 40,
    "batch_size": 4,
    "grad_accum": 1,
    "max_seq_len": 128,
    "warmup_ratio": 0.05,
    "lr_scheduler": "cosine",
    "seed": 42,
}
SAMPLE_DATASET_SIZE = 240

# Split so that evaluation prompts never appear in the training data.
CAPITALS_TRAIN = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Japan": "Tokyo", "China": "Beijing", "Egypt": "Cairo", "Canada": "Ottawa",
    "Russia": "Moscow", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Poland": "Warsaw", "Austria": "Vienna", "Portugal": "Lisbon", "Ireland": "Dublin",
    "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Belgium": "Brussels",
    "the Netherlands": "Amsterdam", "Switzerland": "Bern", "Czechia": "Prague",
    "Romania": "Bucharest", "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb",
    "Ukraine": "Kyiv", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad",
    "India": "New Delhi", "Pakistan": "Islamabad", "Vietnam": "Hanoi",
    "Indonesia": "Jakarta", "the Philippines": "Manila", "Malaysia": "Kuala Lumpur",
    "Mexico": "Mexico City", "Argentina": "Buenos Aires", "Colombia": "Bogota",
    "Venezuela": "Caracas", "Nigeria": "Abuja", "Ethiopia": "Addis Ababa",
    "Morocco": "Rabat", "Ghana": "Accra", "Australia": "Canberra",
    "New Zealand": "Wellington",
}  # fmt: skip
CAPITALS_EVAL = {"South Korea": "Seoul", "Thailand": "Bangkok", "Hungary": "Budapest"}
WORDS_TRAIN = [
    "cat", "dog", "house", "river", "apple", "green", "music", "table", "light", "stone",
    "bread", "cloud", "train", "plant", "chair", "water", "tiger", "smile", "paper", "glass",
    "book", "fish", "bird", "tree", "road", "moon", "star", "rain", "snow", "wind",
    "fire", "sand", "milk", "salt", "rice", "door", "wall", "ship", "lamp", "ring",
    "coin", "bell", "shoe", "hand", "king", "queen", "garden", "window", "pencil", "rocket",
]  # fmt: skip
WORDS_EVAL = ["lemon", "horse", "candle"]

Row = dict[str, str]


def _addition(rng: random.Random, low: int, high: int) -> Row:
    a, b = rng.randint(low, high), rng.randint(low, high)
    return _row(f"What is {a} + {b}?", str(a + b))


def _subtraction(rng: random.Random, low: int, high: int) -> Row:
    a, b = sorted((rng.randint(low, high), rng.randint(low, high)), reverse=True)
    return _row(f"What is {a} - {b}?", str(a - b))


def _capital(rng: random.Random, table: dict[str, str]) -> Row:
    country = rng.choice(sorted(table))
    return _row(f"What is the capital of {country}?", table[country])


def _reverse(rng: random.Random, words: list[str]) -> Row:
    word = rng.choice(words)
    return _row(f"Spell '{word}' backwards.", word[::-1])


def _upper(rng: random.Random, words: list[str]) -> Row:
    word = rng.choice(words)
    return _row(f"Write '{word}' in capital letters.", word.upper())


def _row(instruction: str, answer: str) -> Row:
    return {"instruction": instruction, "input": "", "output": format_answer(answer)}


def format_answer(answer: str) -> str:
    """The one output format the sample task teaches."""
    return json.dumps({"answer": answer})


def _train_generators() -> list[Callable[[random.Random], Row]]:
    return [
        lambda r: _addition(r, 1, 50),
        lambda r: _subtraction(r, 1, 50),
        lambda r: _capital(r, CAPITALS_TRAIN),
        lambda r: _reverse(r, WORDS_TRAIN),
        lambda r: _upper(r, WORDS_TRAIN),
    ]


def sample_rows(n: int = SAMPLE_DATASET_SIZE, seed: int = SAMPLE_SEED) -> list[Row]:
    """``n`` distinct training rows cycling through the task kinds, deterministic for a seed.

    No row repeats, so a validation share of the sample never holds rows it trains on.
    """
    rng = random.Random(seed)
    generators = _train_generators()
    rows: list[Row] = []
    seen: set[str] = set()
    for i in range(n):
        for _ in range(10_000):
            row = generators[i % len(generators)](rng)
            if row["instruction"] not in seen:
                break
        else:
            raise ValueError(f"the sample has fewer than {n} distinct rows")
        seen.add(row["instruction"])
        rows.append(row)
    return rows


def write_jsonl(path: Path | str, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as JSON Lines at ``path`` (its folder made if missing); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sample_dataset(path: Path | str, n: int = SAMPLE_DATASET_SIZE) -> Path:
    """Write the JSON-answer sample dataset as Alpaca JSONL and return its path."""
    return write_jsonl(path, sample_rows(n))


def eval_prompts() -> list[Row]:
    """Held-out rows (numbers, countries and words absent from training), with answers."""
    return [
        _row("What is 63 + 78?", "141"),
        _row("What is 91 - 57?", "34"),
        _row(f"What is the capital of {'South Korea'}?", CAPITALS_EVAL["South Korea"]),
        _row(f"What is the capital of {'Hungary'}?", CAPITALS_EVAL["Hungary"]),
        _row(f"Spell '{WORDS_EVAL[0]}' backwards.", WORDS_EVAL[0][::-1]),
        _row(f"Write '{WORDS_EVAL[1]}' in capital letters.", WORDS_EVAL[1].upper()),
    ]


def follows_format(text: str) -> bool:
    """True when ``text`` is exactly one JSON object with a single string "answer"."""
    try:
        value = json.loads(text.strip())
    except ValueError:
        return False
    return isinstance(value, dict) and set(value) == {"answer"} and isinstance(value["answer"], str)


def answer_of(text: str) -> str | None:
    """The answer inside a well-formed reply, else None."""
    return json.loads(text.strip())["answer"] if follows_format(text) else None


# --- A chat task: multi-turn conversations with a system prompt ---

UNITS = [
    # (quantity, unit, follow-up unit, factor to follow-up)
    ("metres", "m", "centimetres", "cm", 100),
    ("kilometres", "km", "metres", "m", 1000),
    ("kilograms", "kg", "grams", "g", 1000),
    ("litres", "L", "millilitres", "mL", 1000),
    ("hours", "h", "minutes", "min", 60),
    ("minutes", "min", "seconds", "s", 60),
]
CHAT_SYSTEM = "You convert units. Answer with the number and the unit symbol only."
CHAT_DATASET_SIZE = 160


def chat_rows(n: int = CHAT_DATASET_SIZE, seed: int = SAMPLE_SEED) -> list[dict[str, Any]]:
    """Two-turn unit conversions: a question, then a follow-up that needs the first answer."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name, _symbol, smaller, small_symbol, factor = UNITS[i % len(UNITS)]
        amount = rng.randint(2, 40)
        sub = rng.choice([s for s in UNITS if s[0] == smaller] or [None])
        messages = [
            {"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": f"How many {smaller} are in {amount} {name}?"},
            {"role": "assistant", "content": f"{amount * factor} {small_symbol}"},
        ]
        if sub is not None:
            _, _, smallest, smallest_symbol, sub_factor = sub
            messages += [
                {"role": "user", "content": f"And in {smallest}?"},
                {
                    "role": "assistant",
                    "content": f"{amount * factor * sub_factor} {smallest_symbol}",
                },
            ]
        rows.append({"messages": messages})
    return rows


def write_chat_sample(path: Path | str, n: int = CHAT_DATASET_SIZE) -> Path:
    """Write the unit-conversion chat sample as JSONL with ``messages`` rows."""
    return write_jsonl(path, chat_rows(n))


# --- A plain-text corpus for pretraining: tiny stories, one per paragraph ---

ANIMALS = ["cat", "dog", "fox", "owl", "bear", "duck", "frog", "mouse"]
NAMES = ["Tom", "Lily", "Max", "Mia", "Sam", "Zoe", "Ben", "Ava"]
PLACES = ["the park", "the forest", "the river", "the garden", "the hill", "the beach"]
THINGS = ["a red ball", "a shiny stone", "a big leaf", "a lost hat", "a small boat", "a kite"]
FEELINGS = ["happy", "proud", "sleepy", "excited", "calm", "glad"]
STORY_COUNT = 300


def story(rng: random.Random) -> str:
    animal, name, friend = rng.choice(ANIMALS), rng.choice(NAMES), rng.choice(ANIMALS)
    place, thing, feeling = rng.choice(PLACES), rng.choice(THINGS), rng.choice(FEELINGS)
    return (
        f"Once upon a time, there was a little {animal} named {name}. "
        f"One day, {name} went to {place} and found {thing}.\n"
        f"{name} showed {thing} to a {friend}. The {friend} smiled and said, "
        f'"Let us play together!"\n'
        f"They played until the sun went down, and {name} felt {feeling}."
    )


def write_stories_sample(path: Path | str, n: int = STORY_COUNT, seed: int = SAMPLE_SEED) -> Path:
    """Write the tiny-stories corpus as plain text, stories separated by a blank line."""
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(story(rng) for _ in range(n)) + "\n", encoding="utf-8")
    return path


# The pretraining corpus (training.engine.design.corpus): varied stories, enough for a
# 10-minute pretraining on a CPU to learn words and grammar without repeating one text.
PRETRAINING_STORY_COUNT = 5000


def write_pretraining_sample(
    path: Path | str, n: int = PRETRAINING_STORY_COUNT, seed: int = SAMPLE_SEED
) -> Path:
    """Write the pretraining corpus as plain text, stories separated by a blank line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(corpus.stories(n, seed)) + "\n", encoding="utf-8")
    return path


def write_decomposition_sample(path: Path | str, n: int = task_samples.TASK_SAMPLE_SIZE) -> Path:
    """Complex questions -> JSON lists of simple sub-questions (Alpaca JSONL)."""
    return write_jsonl(path, task_samples.decomposition_rows(n, SAMPLE_SEED))


def write_translation_sample(path: Path | str, n: int = task_samples.TASK_SAMPLE_SIZE) -> Path:
    """Short Korean sentences and their English translations (Alpaca JSONL)."""
    return write_jsonl(path, task_samples.translation_rows(n, SAMPLE_SEED))


def write_korean_sample(path: Path | str, n: int = task_samples.TASK_SAMPLE_SIZE) -> Path:
    """Korean instructions answered in Korean (Alpaca JSONL)."""
    return write_jsonl(path, task_samples.korean_instruction_rows(n, SAMPLE_SEED))


@dataclass(frozen=True)
class Sample:
    """A sample dataset the project writes, and how to read it."""

    key: str
    title: str
    description: str
    file_format: str
    shape: str
    text_split: str
    write: Callable[[Path], Path]


SAMPLES: dict[str, Sample] = {
    s.key: s
    for s in (
        Sample(
            "json-answer",
            "Sample: answer in JSON",
            'Instruction task: short questions answered as {"answer": ...}.',
            "jsonl",
            "alpaca",
            "line",
            write_sample_dataset,
        ),
        Sample(
            "unit-chat",
            "Sample: unit conversion chat",
            "Chat task: two-turn conversations with a system prompt.",
            "jsonl",
            "messages",
            "line",
            write_chat_sample,
        ),
        Sample(
            "decompose",
            "Sample: question decomposition",
            "Instruction task: a complex question answered with a JSON list of sub-questions.",
            "jsonl",
            "alpaca",
            "line",
            write_decomposition_sample,
        ),
        Sample(
            "ko-en",
            "Sample: Korean to English",
            "Instruction task: short Korean sentences translated into English.",
            "jsonl",
            "alpaca",
            "line",
            write_translation_sample,
        ),
        Sample(
            "ko-instruct",
            "Sample: Korean instructions",
            "Instruction task in Korean: arithmetic, capitals, opposites and colours.",
            "jsonl",
            "alpaca",
            "line",
            write_korean_sample,
        ),
        Sample(
            "tiny-stories",
            "Sample: tiny stories corpus",
            "Plain text for pretraining: short stories separated by blank lines.",
            "txt",
            "text",
            "blank_line",
            write_stories_sample,
        ),
        Sample(
            "pretraining-stories",
            "Sample: pretraining stories",
            "Plain text for pretraining a design: 5,000 varied short stories (characters, "
            "places, dialogue, questions), separated by blank lines.",
            "txt",
            "text",
            "blank_line",
            write_pretraining_sample,
        ),
    )
}
