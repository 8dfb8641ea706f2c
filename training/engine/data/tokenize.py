"""Tokenization and masking: a rendered record to token ids and labels.

Each segment a prompt template renders (:mod:`.prompts`) is tokenized on its own and
the pieces concatenated, so the prompt tokens are exactly those a model is given at
inference and the masking boundary is exact. Labels are :data:`IGNORE_INDEX` where
nothing is trained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from training.engine.data.prompts import PROMPT, render_segments
from training.engine.data.shapes import Record

IGNORE_INDEX = -100  # label value that torch's cross entropy skips
Example = dict[str, list[int]]


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The template already wrote every special token, so the tokenizer must add none.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _trained_length(tokenizer: Any, response_ids: list[int]) -> int:
    """Number of response tokens to train: up to and including the last end-of-turn token."""
    eos_id = tokenizer.eos_token_id
    for i in range(len(response_ids) - 1, -1, -1):
        if response_ids[i] == eos_id:
            return i + 1
    return len(response_ids)


def encode_record(
    tokenizer: Any,
    record: Record,
    template: str = "model",
    custom_template: str = "",
    train_on_prompt: bool = False,
) -> tuple[list[int], list[int]]:
    """Token ids and labels for a whole record, before truncation.

    Each segment is tokenized on its own and the pieces concatenated: the prompt
    tokens are then exactly those the model is given at inference, and the masking
    boundary is exact. Labels are -100 on prompts (unless ``train_on_prompt``) and on
    anything a template adds after an answer's end-of-turn token.
    """
    ids: list[int] = []
    labels: list[int] = []
    for text, kind in render_segments(tokenizer, record, template, custom_template):
        piece = _encode(tokenizer, text)
        ids += piece
        if kind == PROMPT:
            labels += piece if train_on_prompt else [IGNORE_INDEX] * len(piece)
        else:
            trained = _trained_length(tokenizer, piece)
            labels += piece[:trained] + [IGNORE_INDEX] * (len(piece) - trained)
    return ids, labels


def tokenize_record(
    tokenizer: Any,
    record: Record,
    max_seq_len: int,
    train_on_prompt: bool = False,
    template: str = "model",
    custom_template: str = "",
) -> list[Example]:
    """Training examples for one record: a conversation is truncated to ``max_seq_len``;
    plain text is cut into consecutive windows, so a long document loses nothing."""
    ids, labels = encode_record(tokenizer, record, template, custom_template, train_on_prompt)
    if record.text is None:
        return [{"input_ids": ids[:max_seq_len], "labels": labels[:max_seq_len]}]
    return [
        {"input_ids": ids[i : i + max_seq_len], "labels": labels[i : i + max_seq_len]}
        for i in range(0, len(ids), max_seq_len)
    ]


def has_trained_tokens(example: Example) -> bool:
    """False when truncation cut away every trained token (the caller drops the row).

    The first position is skipped: nothing precedes it, so it is never predicted.
    """
    return any(label != IGNORE_INDEX for label in example["labels"][1:])


def tokenize_records(
    tokenizer: Any,
    records: Iterable[Record],
    max_seq_len: int,
    train_on_prompt: bool = False,
    template: str = "model",
    custom_template: str = "",
) -> tuple[list[Example], int]:
    """Training examples for ``records``, and how many were dropped for having no trained
    token left after truncation."""
    examples: list[Example] = []
    dropped = 0
    for record in records:
        for example in tokenize_record(
            tokenizer, record, max_seq_len, train_on_prompt, template, custom_template
        ):
            if has_trained_tokens(example):
                examples.append(example)
            else:
                dropped += 1
    return examples, dropped


@dataclass(frozen=True)
class TokenView:
    """One token of a preview: its text, whether it is trained, whether it is EOS."""

    text: str
    trained: bool
    eos: bool


def preview_tokens(
    tokenizer: Any,
    record: Record,
    template: str,
    custom_template: str = "",
    train_on_prompt: bool = False,
    max_tokens: int = 512,
) -> tuple[list[TokenView], int]:
    """The first ``max_tokens`` tokens of a record as shown in the preview, and the total."""
    ids, labels = encode_record(tokenizer, record, template, custom_template, train_on_prompt)
    eos_id = tokenizer.eos_token_id
    views = [
        TokenView(tokenizer.decode([i]), label != IGNORE_INDEX, i == eos_id)
        for i, label in zip(ids[:max_tokens], labels[:max_tokens], strict=True)
    ]
    return views, len(ids)


def prompt_ids(
    tokenizer: Any, record: Record, template: str = "model", custom_template: str = ""
) -> list[int]:
    """The tokens a model is given to write the record's last answer: every segment before
    the last trained one, tokenized piece by piece exactly as in training (and as chat
    renders the same messages)."""
    segments = render_segments(tokenizer, record, template, custom_template)
    last = max((i for i, (_, kind) in enumerate(segments) if kind != PROMPT), default=-1)
    ids: list[int] = []
    for text, _ in segments[: max(last, 0)]:
        ids += _encode(tokenizer, text)
    return ids
