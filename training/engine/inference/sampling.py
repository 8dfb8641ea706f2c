"""Sampling settings, checked: plain Python, so the web process can validate a request
(and answer with the parameter at fault) without importing torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
