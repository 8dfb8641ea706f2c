"""Token-by-token generation with sampling settings, stop strings and a cancel flag.

:class:`Sampling` checks the settings a user (or an API client) asks for and raises
:class:`SamplingError` naming the parameter, so a page or an OpenAI-style error can say
what is wrong. :class:`TokenStream` runs ``generate`` in a thread and yields the reply
in text chunks; generation stops at the end-of-sequence token, at a stop string (never
shown), at ``max_new_tokens``, or as soon as the ``cancelled`` callable returns True
(checked after every token, so a client that went away stops the worker).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 100
MAX_NEW_TOKENS = 4096


class SamplingError(ValueError):
    """A sampling setting out of range; ``param`` names it (OpenAI's ``param`` field)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens. ``temperature`` 0 means greedy; ``top_k`` 0 means no top-k."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        def number(name: str, low: float, high: float, low_open: bool = False) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SamplingError(name, f"{name} must be a number")
            if (
                not math.isfinite(value)
                or value > high
                or value < low
                or (low_open and value == low)
            ):
                bracket = "(" if low_open else "["
                raise SamplingError(name, f"{name} must be in {bracket}{low}, {high}]")

        number("temperature", 0.0, 2.0)
        number("top_p", 0.0, 1.0, low_open=True)
        number("repetition_penalty", 0.0, 2.0, low_open=True)
        for name, high in (("top_k", 1000), ("max_new_tokens", MAX_NEW_TOKENS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SamplingError(name, f"{name} must be an integer")
            low = 1 if name == "max_new_tokens" else 0
            if not low <= value <= high:
                raise SamplingError(name, f"{name} must be between {low} and {high}")
        stop = self.stop
        if isinstance(stop, str):
            object.__setattr__(self, "stop", (stop,))
        elif not isinstance(stop, tuple | list) or not all(isinstance(s, str) for s in stop):
            raise SamplingError("stop", "stop must be a string or a list of strings")
        else:
            object.__setattr__(self, "stop", tuple(stop))
        if len(self.stop) > MAX_STOP_STRINGS:
            raise SamplingError("stop", f"at most {MAX_STOP_STRINGS} stop strings")
        if any(not s or len(s) > MAX_STOP_LENGTH for s in self.stop):
            raise SamplingError(
                "stop", f"a stop string must have 1 to {MAX_STOP_LENGTH} characters"
            )

    def generation_config(self, tokenizer: Any) -> Any:
        from transformers import GenerationConfig

        sample = self.temperature > 0
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=sample,
            temperature=self.temperature if sample else None,
            top_p=self.top_p if sample else None,
            top_k=(self.top_k or None) if sample else None,
            repetition_penalty=self.repetition_penalty,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )


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
