"""Batched generation: many prompts at once, each stopping at its own end of turn.

Prompts are sorted by length and generated in batches, left-padded so that every row's
next token sits in the last column; the KV cache keeps each step to one new position,
and a row that produced EOS only receives padding while the others go on (transformers'
``generate`` does the stepping). Greedy outputs are those of one prompt at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from training.engine.inference.cores import use_free_cores


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 16


@dataclass(frozen=True)
class Generated:
    text: str
    tokens: int  # new tokens, the EOS included
    stopped: bool  # ended at EOS (else at max_new_tokens)


def left_pad(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            input_ids[i, width - len(row) :] = torch.tensor(row)
            attention_mask[i, width - len(row) :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _config(tokenizer: Any, settings: GenerationSettings) -> Any:
    from transformers import GenerationConfig

    sample = settings.temperature > 0
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=sample,
        temperature=settings.temperature if sample else None,
        top_p=settings.top_p if sample else None,
        top_k=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    settings: GenerationSettings,
    on_batch: Callable[[int], bool | None] | None = None,
) -> list[Generated]:
    """Replies to ``prompts`` (token ids), in their order.

    ``on_batch(done)`` is called after each batch with the number of prompts answered
    so far; when it returns False generation stops and the partial list is returned.
    """
    config = _config(tokenizer, settings)
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: dict[int, Generated] = {}
    size = max(1, settings.batch_size)
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        batch = left_pad([prompts[i] for i in chunk], tokenizer.pad_token_id)
        if settings.temperature > 0:
            torch.manual_seed(settings.seed + start)
        if device.type == "cpu":
            # A thread on a core another process keeps busy holds up every decoding step
            # (4-30x slower on the shared 2-core machine): the free cores only.
            use_free_cores()
        with torch.inference_mode():
            out = model.generate(
                **{k: v.to(device) for k, v in batch.items()}, generation_config=config
            )
        width = batch["input_ids"].shape[1]
        for row, index in enumerate(chunk):
            results[index] = _decode(tokenizer, out[row, width:].tolist())
        if on_batch is not None and on_batch(len(results)) is False:
            break
    return [results[i] for i in range(len(prompts)) if i in results]


def _decode(tokenizer: Any, new: list[int]) -> Generated:
    eos = tokenizer.eos_token_id
    stopped = eos in new
    if stopped:
        new = new[: new.index(eos) + 1]
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    return Generated(text, len(new), stopped)
