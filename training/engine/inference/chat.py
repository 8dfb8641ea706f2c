"""Chat with a base model and, optionally, its LoRA adapter — one model in memory.

The base answer in :meth:`ChatModel.compare` comes from the same weights with the
adapter switched off, so a side-by-side never needs two copies of the model.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from training.engine.data.prompts import inference_prompt
from training.engine.models import store
from training.engine.models.folders import check_safe_adapter_dir

Message = dict[str, str]


def encode_prompt(
    tokenizer: Any, messages: list[Message], template: str = "model", custom_template: str = ""
) -> Any:
    """Token ids for a chat, rendered as the run's template rendered training prompts.

    The model template uses the tokenizer's chat template (all the turns); Alpaca and
    custom templates are single-turn: the system prompt and the last user message,
    tokenized without added special tokens, as in training.
    """
    if template == "model":
        return tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    question = [m["content"] for m in messages if m["role"] == "user"][-1]
    text = inference_prompt(question, system, template, custom_template)
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")


class ChatModel:
    """A loaded base model (plus optional adapter) that answers chat messages."""

    def __init__(
        self,
        model_dir: Path | str,
        adapter_dir: Path | str | None = None,
        quantization: store.Quantization = "none",
        device: str | None = None,
        template: str = "model",
        custom_template: str = "",
    ) -> None:
        # How the run's dataset rendered prompts: the tuned model is asked the same way.
        self.template, self.custom_template = template, custom_template
        model, self.tokenizer = store.load_model_and_tokenizer(
            Path(model_dir), quantization=quantization, device=device
        )
        self.has_adapter = adapter_dir is not None
        if adapter_dir is not None:
            from peft import PeftModel

            check_safe_adapter_dir(Path(adapter_dir))
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        self.model = model.eval()
        # generate() is not re-entrant and the adapter switch is model-wide state.
        self._lock = threading.Lock()

    def _inputs(self, messages: list[Message]) -> dict[str, torch.Tensor]:
        encoded = encode_prompt(self.tokenizer, messages, self.template, self.custom_template)
        return {k: v.to(self.model.device) for k, v in encoded.items()}

    def _generate_kwargs(self, max_new_tokens: int, temperature: float, top_p: float) -> dict:
        from transformers import GenerationConfig

        sample = temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=None,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return {"generation_config": config}

    def _adapter(self, use_adapter: bool) -> contextlib.AbstractContextManager[Any]:
        if self.has_adapter and not use_adapter:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def generate(self, messages: list[Message], **settings: Any) -> str:
        """The assistant's whole reply (see :meth:`stream` for the settings)."""
        return "".join(self.stream(messages, **settings)).strip()

    def compare(self, messages: list[Message], **kwargs: Any) -> dict[str, str]:
        """Base and tuned replies to the same messages, from the one loaded model."""
        return {
            "base": self.generate(messages, use_adapter=False, **kwargs),
            "tuned": self.generate(messages, use_adapter=True, **kwargs),
        }

    def stream(
        self,
        messages: list[Message],
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        use_adapter: bool = True,
    ) -> Iterator[str]:
        """Yield the reply in text chunks as tokens are generated."""
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        kwargs = self._generate_kwargs(max_new_tokens, temperature, top_p)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300
        )
        errors: list[BaseException] = []

        def run() -> None:
            # The adapter switch must wrap generate() in the thread that runs it.
            try:
                with self._lock, self._adapter(use_adapter), torch.inference_mode():
                    self.model.generate(**inputs, **kwargs, streamer=streamer)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for chunk in streamer:
            if chunk:
                yield chunk
        thread.join()
        if errors:
            raise errors[0]
