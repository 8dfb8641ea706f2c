"""Validation loss: the same token loss as training, over held-out examples, without grad."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from training.engine.data.tokenize import Example
from training.engine.train.batches import collate, count_trained, summed_loss


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean cross-entropy per trained token
    tokens: int  # trained tokens it was averaged over

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def evaluation_loss(
    model: Any, examples: list[Example], pad_id: int, batch_size: int = 8
) -> EvalResult:
    """Mean loss over every trained token of ``examples`` (not a mean of batch means).

    The model is put in eval mode (no dropout) and restored to its previous mode.
    """
    if not examples:
        raise ValueError("no validation examples")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    tokens = 0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                batch = collate(examples[start : start + batch_size], pad_id)
                n = count_trained(batch)
                if not n:
                    continue
                batch = {k: v.to(device) for k, v in batch.items()}
                total += float(summed_loss(model, batch))
                tokens += n
    finally:
        model.train(was_training)
    if not tokens:
        raise ValueError("the validation examples have no trained token")
    return EvalResult(loss=total / tokens, tokens=tokens)
