"""A model writes the outputs of a model recipe (``data.model_recipe``), batch by batch.

Each batch of prompts goes through the batched generator (``inference.generate``, the
evaluations' own); its replies are offered to the recipe's keeper (check, duplicates)
before the next batch, so progress can say how many rows were kept and dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.engine.data.model_recipe import Keeper, Plan, Tally, messages, prompts
from training.engine.data.synthetic import RecipeError
from training.engine.inference.chat import encode_prompt
from training.engine.inference.cores import use_free_cores
from training.engine.inference.generate import GenerationSettings, generate

BATCH_SIZE = 16


class Cancelled(Exception):
    """``on_progress`` asked to stop."""


def prompt_ids(
    tokenizer: Any, plan: Plan, template: str = "model", custom_template: str = ""
) -> tuple[list[dict[str, str]], list[list[int]]]:
    """The rows to generate and their prompts' token ids, rendered with ``template``
    (the model's chat template, or the one a run was trained with)."""
    rows = prompts(plan)
    chat = template == "model"
    ids = [
        encode_prompt(tokenizer, messages(row, plan.examples, chat), template, custom_template)[
            "input_ids"
        ][0].tolist()
        for row in rows
    ]
    return rows, ids


def synthesize(
    model: Any,
    tokenizer: Any,
    plan: Plan,
    template: str = "model",
    custom_template: str = "",
    on_progress: Callable[[Tally], bool] | None = None,
    batch_size: int = BATCH_SIZE,
    context_length: int = 0,
) -> Keeper:
    """Generate every row of ``plan``; the keeper holds the rows kept and the counts.
    ``on_progress(tally)`` runs after each batch; False raises Cancelled. A prompt that
    leaves no room for ``max_new_tokens`` in ``context_length`` (0: not known) is
    refused before anything is generated."""
    rows, ids = prompt_ids(tokenizer, plan, template, custom_template)
    recipe = plan.recipe
    longest = max(len(i) for i in ids)
    if context_length and longest + recipe.max_new_tokens > context_length:
        raise RecipeError(
            "max_new_tokens",
            f"the longest prompt has {longest:,} tokens (seed examples included): with "
            f"{recipe.max_new_tokens} new tokens it passes the model's context of "
            f"{context_length:,}; shorten the examples or ask for fewer new tokens",
        )
    keeper = Keeper(recipe)
    on_cpu = next(model.parameters()).device.type == "cpu"
    for start in range(0, len(rows), batch_size):
        if on_cpu:  # a CPU worker: only the cores other processes leave free
            use_free_cores()
        settings = GenerationSettings(
            max_new_tokens=recipe.max_new_tokens,
            temperature=recipe.temperature,
            seed=recipe.seed + start,  # each batch its own draws, the same on every run
            batch_size=batch_size,
        )
        replies = generate(model, tokenizer, ids[start : start + batch_size], settings)
        for row, reply in zip(rows[start : start + batch_size], replies, strict=True):
            keeper.offer(row, reply.text)
        if on_progress is not None and on_progress(keeper.tally) is False:
            raise Cancelled
    return keeper
