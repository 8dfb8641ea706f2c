"""Answer one generation on a worker, streaming its tokens through the relay.

Every worker process keeps one :class:`ModelCache`: the bases it answered with recently
stay loaded (within ``SLMLAB_MODEL_CACHE_MB``), and a run's adapter is switched onto its
loaded base rather than loaded as a second copy. A chat is rendered with the model's own
chat template, or, for a run, the template its dataset was trained with.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings

from playground import relay
from playground.models import Generation
from training.engine.inference.cache import ModelCache
from training.engine.inference.chat import encode_prompt
from training.engine.inference.cores import use_free_cores
from training.engine.inference.stream import Sampling, SamplingError, TokenStream

logger = logging.getLogger(__name__)


@functools.cache
def model_cache() -> ModelCache:
    return ModelCache(budget_bytes=settings.SLMLAB_MODEL_CACHE_MB * 1024 * 1024)


def _inputs(generation: Generation, tokenizer) -> dict:
    if generation.kind == Generation.Kind.COMPLETION:
        return dict(tokenizer(generation.prompt, return_tensors="pt"))
    run = generation.run
    if run is None or run.is_pretraining:  # a pretrained model: its tokenizer's template
        return dict(encode_prompt(tokenizer, generation.messages, "model", ""))
    template, custom = run.dataset.template, run.dataset.custom_template
    return dict(encode_prompt(tokenizer, generation.messages, template, custom))


def _sampling(data: dict) -> Sampling:
    return Sampling(**{**data, "stop": tuple(data.get("stop", ()))})


def _stream(generation: Generation) -> TokenStream:
    """Generate under the cache's lease, publishing each piece as it comes."""
    cache = model_cache()
    with cache.lease(generation.model_dir, generation.adapter_dir) as (model, tokenizer):
        if model.device.type == "cpu":
            use_free_cores()
        stream = TokenStream(
            model,
            tokenizer,
            _inputs(generation, tokenizer),
            _sampling(generation.sampling),
            cancelled=lambda: relay.is_cancelled(generation.pk),
        )
        for text in stream:
            relay.publish_token(generation.pk, text)  # the client first, then the record
            if not generation.first_token:
                generation.mark_first_token()
    return stream


def answer_generation(generation_id: int) -> None:
    """Claim one generation and answer it; a second delivery does nothing."""
    generation = (
        Generation.objects.select_related("base_model", "run__dataset", "run__base_run")
        .filter(pk=generation_id)
        .first()
    )
    if generation is None or not generation.claim():
        return
    try:
        stream = _stream(generation)
    except SamplingError as exc:  # the prompt and max_tokens do not fit the context
        generation.fail(exc.message)
        relay.publish_error(generation.pk, exc.message, exc.param)
        return
    except Exception as exc:
        logger.exception("generation %s failed", generation_id)
        generation.fail(f"{type(exc).__name__}: {exc}")
        relay.publish_error(generation.pk, "The model could not answer: an error on the worker.")
        return
    generation.finish(
        output=stream.text,
        finish_reason=stream.finish_reason or "stop",
        prompt_tokens=stream.prompt_tokens,
        completion_tokens=stream.completion_tokens,
    )
    relay.publish_done(generation.pk, generation.finish_reason, generation.usage)
