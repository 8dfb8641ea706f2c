"""Text from a pretraining run's model on a worker: it continues the prompt."""

from __future__ import annotations

import logging

from training import events
from training.models import Generation

logger = logging.getLogger(__name__)

# The last model loaded, by folder: a student generating again waits for no load.
_loaded: dict[str, tuple] = {}


def _model(folder: str) -> tuple:
    if folder not in _loaded:
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        _loaded.clear()
        model = AutoModelForCausalLM.from_pretrained(folder)
        _loaded[folder] = (model, PreTrainedTokenizerFast.from_pretrained(folder))
    return _loaded[folder]


def generate(generation_id: int) -> None:
    """Claim one generation and write its text; a second delivery does nothing."""
    from training.engine.design.pretrain import sample_text

    generation = Generation.objects.select_related("run").filter(pk=generation_id).first()
    if generation is None or not generation.claim():
        return
    run = generation.run
    try:
        model, tokenizer = _model(str(run.model_dir))
        text = sample_text(
            model,
            tokenizer,
            generation.prompt,
            generation.max_new_tokens,
            temperature=generation.temperature,
        )
    except Exception as exc:
        logger.exception("generation %s failed", generation_id)
        generation.fail(run.public_text(f"{type(exc).__name__}: {exc}"))
    else:
        generation.finish(text=text)
    events.publish_generations(run.pk)
