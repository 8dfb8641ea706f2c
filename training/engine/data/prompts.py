"""Prompt templates: a record rendered as text segments that are trained or masked.

Three templates:

- ``model``: the tokenizer's own chat template. Every assistant turn is trained
  (up to and including its end-of-turn token); system and user turns and the
  template's scaffolding are masked.
- ``alpaca``: the classic "### Instruction / ### Input / ### Response" text; the
  response and the EOS token are trained.
- ``custom``: a user string with ``{placeholders}``; everything before
  ``{output}`` is the prompt, ``{output}`` and what follows it (then EOS) is trained.

Plain-text records ignore the template: all of the text is trained, then EOS.
"""

from __future__ import annotations

import string
from typing import Any

from training.engine.data.shapes import Record

TEMPLATES = ("model", "alpaca", "custom")
PROMPT, RESPONSE = "prompt", "response"

ALPACA_HEADER = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
ALPACA_HEADER_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request."
)
DEFAULT_CUSTOM_TEMPLATE = "Question: {instruction}\n{input}\nAnswer: {output}"

Segment = tuple[str, str]  # (text, PROMPT | RESPONSE)


class TemplateError(ValueError):
    """A template that cannot render a record; the message says what to fix."""


def placeholders(template: str) -> list[str]:
    """The ``{names}`` in a custom template; raises :class:`TemplateError` on bad braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"the template's braces do not match ({exc}); write {{{{ for a literal {{"
        ) from exc
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(
                f'"{{{name}}}" is not a placeholder: expected a plain name like {{output}}'
            )
        names.append(name)
    return names


def check_custom_template(template: str) -> None:
    names = placeholders(template)
    if names.count("output") != 1:
        raise TemplateError(
            "the template must contain {output} exactly once: it marks the answer to train on"
        )


def check_template(template: str, custom: str, record: Record) -> None:
    """Raise :class:`TemplateError` when ``template`` cannot render ``record``."""
    if template not in TEMPLATES:
        raise TemplateError(
            f'unknown template "{template}": expected one of {", ".join(TEMPLATES)}'
        )
    if record.text is not None or template == "model":
        return
    if not record.is_single_turn:
        raise TemplateError(
            f"the {template} template needs one prompt and one answer, but this conversation "
            f"has {len(record.turns)} turns: use the model's chat template"
        )
    if template == "custom":
        check_custom_template(custom)
        missing = [n for n in placeholders(custom) if n not in record.fields]
        if missing:
            known = ", ".join("{" + n + "}" for n in sorted(record.fields))
            raise TemplateError(f"unknown placeholder {{{missing[0]}}}: this row has {known}")


def render_segments(
    tokenizer: Any, record: Record, template: str, custom: str = ""
) -> list[Segment]:
    """The record's text in order, each piece marked as prompt (masked) or response (trained)."""
    check_template(template, custom, record)
    eos = tokenizer.eos_token or ""
    if record.text is not None:
        return [(record.text + eos, RESPONSE)]
    if template == "model":
        return _chat_segments(tokenizer, record)
    if template == "alpaca":
        return _alpaca_segments(record, eos)
    return _custom_segments(record, custom, eos)


def _messages(record: Record, upto: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": record.system}] if record.system else []
    return messages + [{"role": t.role, "content": t.content} for t in record.turns[:upto]]


def _chat_segments(tokenizer: Any, record: Record) -> list[Segment]:
    """Render the conversation turn by turn so each boundary is where inference puts it.

    For each assistant turn, the text up to its header is what the model is given at
    inference (``add_generation_prompt``); the rest of that turn is what it writes.
    """
    segments: list[Segment] = []
    done = ""
    for i, turn in enumerate(record.turns):
        if turn.role != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(
            _messages(record, i), tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(_messages(record, i + 1), tokenize=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise TemplateError(
                "the model's chat template renders a conversation differently from its "
                "beginning, so the trained turns cannot be found: use the Alpaca or a "
                "custom template"
            )
        segments.append((prompt[len(done) :], PROMPT))
        segments.append((full[len(prompt) :], RESPONSE))
        done = full
    return [s for s in segments if s[0]]


def _alpaca_segments(record: Record, eos: str) -> list[Segment]:
    f = record.fields
    header = f.get("system") or (ALPACA_HEADER_WITH_INPUT if f.get("input") else ALPACA_HEADER)
    prompt = f"{header}\n\n### Instruction:\n{f['instruction']}\n\n"
    if f.get("input"):
        prompt += f"### Input:\n{f['input']}\n\n"
    prompt += "### Response:\n"
    return [(prompt, PROMPT), (f["output"] + eos, RESPONSE)]


def _custom_segments(record: Record, custom: str, eos: str) -> list[Segment]:
    prompt: list[str] = []
    response: list[str] = []
    target = prompt
    for literal, name, _, _ in string.Formatter().parse(custom):
        target.append(literal)
        if name == "output":
            target = response
        if name is not None:
            target.append(record.fields[name])
    segments = [("".join(prompt), PROMPT), ("".join(response) + eos, RESPONSE)]
    return [s for s in segments if s[0]]


def inference_prompt(prompt: str, system: str, template: str, custom: str = "") -> str:
    """The text a model trained with an Alpaca or custom template is given for ``prompt``.

    It is the prompt segment exactly as training rendered it, with the question as
    ``{instruction}`` and every other placeholder empty, so a tuned model is asked the
    way it learned to answer. (With the model template, chat renders the messages with
    the tokenizer's own chat template instead.)
    """
    fields = {"instruction": prompt, "input": "", "output": ""}
    if system:
        fields["system"] = system
    if template == "alpaca":
        return _alpaca_segments(Record(fields=fields), "")[0][0]
    if template == "custom":
        check_custom_template(custom)
        fields.update({name: "" for name in placeholders(custom) if name not in fields})
        segments = _custom_segments(Record(fields=fields), custom, "")
        return "".join(text for text, kind in segments if kind == PROMPT)
    raise TemplateError(f"the {template} template has no text prompt: use the chat template")
