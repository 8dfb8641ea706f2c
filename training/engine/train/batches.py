"""Micro-batches: padded or packed, and the summed token loss over one of them.

Shared by the training loop and evaluation (:mod:`training.engine.evaluate.loss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from training.engine.config import RunConfig
from training.engine.data.tokenize import IGNORE_INDEX, Example
from training.engine.train import speed

Batch = dict[str, torch.Tensor]


def collate(examples: list[Example], pad_id: int) -> Batch:
    """Right-pad to the longest example in the batch; padding is masked everywhere."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def pack(examples: list[Example], pad_id: int, row_len: int) -> Batch:
    """Several examples per row (first-fit decreasing into rows of ``row_len`` tokens).

    Positions restart at 0 for each example, and there is no ``attention_mask``:
    transformers then reads each reset as a sequence boundary and builds a
    block-diagonal causal mask, so no token sees another example and RoPE sees the
    same positions as in a padded row. The first label of every example is masked,
    because in a packed row the previous example's last position would predict it.
    Trailing pad forms one more sequence of its own whose outputs are never used.
    ``token_mask`` marks the real tokens.
    """
    rows: list[list[Example]] = []
    room: list[int] = []
    for e in sorted(examples, key=lambda e: len(e["input_ids"]), reverse=True):
        n = len(e["input_ids"])
        fits = next((i for i, free in enumerate(room) if n <= free), None)
        if fits is None:
            rows.append([e])
            room.append(max(row_len, n) - n)
        else:
            rows[fits].append(e)
            room[fits] -= n
    width = max(sum(len(e["input_ids"]) for e in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    token_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for e in row:
            n = len(e["input_ids"])
            input_ids[r, start : start + n] = torch.tensor(e["input_ids"])
            labels[r, start + 1 : start + n] = torch.tensor(e["labels"][1:], dtype=torch.long)
            position_ids[r, start : start + n] = torch.arange(n)
            token_mask[r, start : start + n] = 1
            start += n
        position_ids[r, start:] = torch.arange(width - start)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "token_mask": token_mask,
    }


def one_row(batch: Batch) -> Batch:
    """A packed batch's rows laid end to end as one row (the same loss and gradients).

    flash-attention's variable-length path in transformers reads sequence boundaries
    from the position resets only in a batch of one row; every row of :func:`pack`
    starts an example (whose first label is masked) and its trailing pad restarts its
    positions too, so joining the rows joins no two sequences.
    """
    return {k: v.reshape(1, -1) for k, v in batch.items()}


def wants_one_row(model: Any) -> bool:
    """Whether the model's attention is flash-attention (packed rows must be one row)."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return isinstance(implementation, str) and implementation.startswith("flash_attention")


def make_batch(examples: list[Example], config: RunConfig, pad_id: int) -> Batch:
    """A packed micro-batch by default; a right-padded one with ``packing`` off."""
    if config.packing:
        return pack(examples, pad_id, config.max_seq_len)
    return collate(examples, pad_id)


def count_trained(batch: Batch) -> int:
    """Tokens that contribute to the loss (labels are shifted by one position)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def count_real(batch: Batch) -> int:
    """Real (non-pad) tokens of a padded or packed batch."""
    mask = batch["token_mask"] if "token_mask" in batch else batch["attention_mask"]
    return int(mask.sum())


def summed_loss(model: Any, batch: Batch) -> torch.Tensor:
    """Sum of token cross-entropies; the caller divides by the window's trained tokens.

    Only positions whose next token is trained go through the LM head
    (``logits_to_keep`` as a boolean mask): the head is a 49k-wide projection, and
    masked prompt and pad positions would pay for it for nothing. The forward runs
    under the autocast :func:`attach_lora` chose; the loss is always fp32.
    """
    if "position_ids" in batch and batch["input_ids"].size(0) > 1 and wants_one_row(model):
        batch = one_row(batch)
    targets = batch["labels"][:, 1:]
    predicts = targets != IGNORE_INDEX
    keep = torch.nn.functional.pad(predicts, (0, 1), value=False)  # position t predicts t+1
    if "position_ids" in batch:  # packed: the position resets are the example boundaries
        boundaries = {"position_ids": batch["position_ids"]}
    else:
        boundaries = {"attention_mask": batch["attention_mask"]}
    head_loss = getattr(model, speed.HEAD_LOSS_ATTR, None)
    if head_loss is not None:
        return hidden_state_loss(model, batch, head_loss, boundaries)
    # No KV cache: training never reuses it, and with one transformers ignores packing.
    with speed.autocast_context(model, batch["input_ids"].device.type):
        logits = model(
            input_ids=batch["input_ids"], logits_to_keep=keep, use_cache=False, **boundaries
        ).logits
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets[predicts], reduction="sum"
    )


def hidden_state_loss(
    model: Any, batch: Batch, head_loss: speed.HeadLoss, boundaries: dict[str, torch.Tensor]
) -> torch.Tensor:
    """:func:`summed_loss` with the LM head and the loss in one ``head_loss`` call (a fused
    linear cross-entropy): the decoder's last hidden states at the positions whose next
    token is trained, the head's weight and the targets; the logits never exist whole."""
    targets = batch["labels"][:, 1:]
    predicts = targets != IGNORE_INDEX
    lm = model.get_base_model()
    with speed.autocast_context(model, batch["input_ids"].device.type):
        hidden = lm.get_decoder()(
            input_ids=batch["input_ids"], use_cache=False, **boundaries
        ).last_hidden_state[:, :-1][predicts]
        weight = lm.get_output_embeddings().weight
        return head_loss(weight.to(hidden.dtype), hidden, targets[predicts])
