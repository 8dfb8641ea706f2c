"""Token-by-token generation with sampling settings, stop strings and a cancel flag.

:class:`Sampling` (in sampling.py) checks what a user or an API client asks for and raises
:class:`SamplingError` naming the parameter, so a page or an OpenAI-style error can say
what is wrong. :class:`TokenStream` runs ``generate`` in a thread and yields the reply
in text chunks; generation stops at the end-of-sequence token, at a stop string (never
shown), at ``max_new_tokens``, or as soon as the ``cancelled`` callable returns True
(checked after every token, so a client that went away stops the worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from training.engine.inference.sampling import MAX_STOP_LENGTH, Sampling, SamplingError

__all__ = ["Sampling", "SamplingError", "TokenStream", "check_fits"]


def context_length(model: Any) -> int:
    """How many tokens (prompt plus reply) the model can attend to."""
    config = model.config
    return int(getattr(config, "max_position_embeddings", 0) or 2048)


def check_fits(model: Any, prompt_tokens: int, sampling: Sampling) -> None:
    """Refuse a request whose prompt plus ``max_new_tokens`` exceeds the context."""
    limit = context_length(model)
    if prompt_tokens + sampling.max_new_tokens > limit:
        raise SamplingError(
            "max_tokens",
            f"this model's context is {limit} tokens: the prompt has {prompt_tokens} and "
            f"{sampling.max_new_tokens} new tokens were asked for",
        )


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could start a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-size:]):
                longest = size
                break
    return longest


class TokenStream:
    """Iterate over the reply's text chunks; afterwards read ``finish_reason`` ("stop",
    "length" or "cancelled"), ``prompt_tokens`` and ``completion_tokens``.

    The model must not be used by anyone else while the stream runs (see cache.py).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        inputs: dict[str, torch.Tensor],
        sampling: Sampling,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.model, self.tokenizer, self.sampling = model, tokenizer, sampling
        self.inputs = {k: v.to(model.device) for k, v in inputs.items()}
        self.prompt_tokens = int(self.inputs["input_ids"].shape[1])
        check_fits(model, self.prompt_tokens, sampling)
        self._cancelled = cancelled
        self._stop_now = threading.Event()
        self.was_cancelled = False
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.text = ""

    def _should_stop(self) -> bool:
        if self._stop_now.is_set():
            return True
        if self._cancelled():
            self.was_cancelled = True
            self._stop_now.set()
            return True
        return False

    def __iter__(self) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stream = self

        class Streamer(TextIteratorStreamer):
            def put(self, value: torch.Tensor) -> None:
                if not self.next_tokens_are_prompt:
                    stream.completion_tokens += int(value.numel())
                super().put(value)

        class Flag(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                stop = stream._should_stop()
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)

        streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []
        kwargs = {
            "generation_config": self.sampling.generation_config(self.tokenizer),
            "stopping_criteria": StoppingCriteriaList([Flag()]),
            "streamer": streamer,
        }

        def run() -> None:
            try:
                if self.sampling.seed is not None:
                    torch.manual_seed(self.sampling.seed)
                with torch.inference_mode():
                    self.model.generate(**self.inputs, **kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        if self._should_stop():  # cancelled before it started
            self.finish_reason = "cancelled"
            return
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        stops, emitted, stopped = self.sampling.stop, 0, False
        try:
            for chunk in streamer:
                if stopped or not chunk:
                    continue
                self.text += chunk
                hits = [
                    i
                    for i in (self.text.find(s, max(0, emitted - MAX_STOP_LENGTH)) for s in stops)
                    if i >= 0
                ]
                if hits:
                    cut = min(hits)
                    if cut > emitted:
                        yield self.text[emitted:cut]
                    self.text, emitted, stopped = self.text[:cut], cut, True
                    self._stop_now.set()
                    continue
                safe = len(self.text) - _held_back(self.text, stops)
                if safe > emitted:
                    yield self.text[emitted:safe]
                    emitted = safe
            if not stopped and len(self.text) > emitted:
                yield self.text[emitted:]
        finally:
            self._stop_now.set()  # a consumer that stops iterating stops the model
            thread.join()
        if errors:
            raise errors[0]
        if self.was_cancelled:
            self.finish_reason = "cancelled"
        elif not stopped and self.completion_tokens >= self.sampling.max_new_tokens:
            self.finish_reason = "length"
        else:
            self.finish_reason = "stop"
