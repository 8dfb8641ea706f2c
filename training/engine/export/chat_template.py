"""The chat template an exported model carries: the one its run trained with.

A run that trained with the model's own chat template keeps the tokenizer's template.
A run that trained with the Alpaca or a custom template learned to answer a prompt
rendered that way, so its exports get a Jinja chat template that renders the last user
message exactly as :func:`inference_prompt` does (single turn, as in training).

:class:`ChatPieces` cuts any chat template into the text around each message, so the
same conversation can be written as an Ollama (Go) template: see :mod:`.modelfile`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.engine.data.prompts import inference_prompt

# Contents no real message holds: where they land in a rendering shows the scaffolding.
MARK_SYSTEM = "\u2063SYSTEM\u2063"
MARK_USER = "\u2063USER\u2063"
MARK_ASSISTANT = "\u2063ASSISTANT\u2063"
MARK_QUESTION = "\u2063QUESTION\u2063"


class ChatTemplateError(ValueError):
    """A chat template that cannot be exported; the message says why."""


def _jinja_literal(text: str) -> str:
    """``text`` as a Jinja string expression (printed verbatim)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "{{ '" + escaped + "' }}"


def text_prompt_template(template: str, custom_template: str = "") -> str:
    """A Jinja chat template rendering the last user message as an Alpaca/custom prompt."""
    rendered = inference_prompt(MARK_QUESTION, "", template, custom_template)
    before, _, after = rendered.partition(MARK_QUESTION)
    return (
        "{%- set ns = namespace(question='') -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{%- set ns.question = message['content'] -%}"
        "{%- endif -%}{%- endfor -%}"
        + _jinja_literal(before)
        + "{{ ns.question }}"
        + _jinja_literal(after)
        + "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}{{ message['content'] + eos_token }}"
        "{%- endif -%}{%- endfor -%}"
    )


def template_for_run(tokenizer: Any, template: str, custom_template: str = "") -> str:
    """The chat template the exported model should carry (Jinja)."""
    if template == "model":
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError("the base model's tokenizer has no chat template")
        return tokenizer.chat_template
    return text_prompt_template(template, custom_template)


@dataclass(frozen=True)
class ChatPieces:
    """The text a chat template puts around each message, and its generation prompt.

    ``default_system`` is what the template writes when a conversation has no system
    message (SmolLM2 writes its own). ``single_turn``: only the last user message is
    rendered (Alpaca and custom prompts).
    """

    system: tuple[str, str]
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation_prompt: str
    default_system: str
    single_turn: bool = False

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation as the template renders it (tests compare with Jinja)."""
        if self.single_turn:
            question = [m["content"] for m in messages if m["role"] == "user"][-1]
            return self.user[0] + question + self.user[1]
        parts = []
        if not messages or messages[0]["role"] != "system":
            parts.append(self.default_system)
        for message in messages:
            before, after = getattr(self, message["role"])
            parts.append(before + message["content"] + after)
        if add_generation_prompt:
            parts.append(self.generation_prompt)
        return "".join(parts)


def _render(tokenizer: Any, chat_template: str, messages: list, generation: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=generation
    )


def _around(text: str, mark: str) -> tuple[str, str]:
    if text.count(mark) != 1:
        raise ChatTemplateError("the chat template does not render each message once")
    before, _, after = text.partition(mark)
    return before, after


def chat_pieces(tokenizer: Any, chat_template: str, single_turn: bool = False) -> ChatPieces:
    """Cut ``chat_template`` into :class:`ChatPieces` by rendering marked messages.

    Raises :class:`ChatTemplateError` when the template does not render a conversation
    as the concatenation of its messages (then no Go template can say the same).
    """
    if single_turn:
        text = _render(tokenizer, chat_template, [{"role": "user", "content": MARK_USER}], True)
        before, after = _around(text, MARK_USER)
        return ChatPieces(("", ""), (before, after), ("", ""), "", "", single_turn=True)
    system = {"role": "system", "content": MARK_SYSTEM}
    user = {"role": "user", "content": MARK_USER}
    assistant = {"role": "assistant", "content": MARK_ASSISTANT}
    sys_only = _render(tokenizer, chat_template, [system], False)
    sys_user = _render(tokenizer, chat_template, [system, user], False)
    sys_user_gen = _render(tokenizer, chat_template, [system, user], True)
    sys_user_asst = _render(tokenizer, chat_template, [system, user, assistant], False)
    user_only = _render(tokenizer, chat_template, [user], False)
    if not (
        sys_user.startswith(sys_only)
        and sys_user_gen.startswith(sys_user)
        and sys_user_asst.startswith(sys_user)
    ):
        raise ChatTemplateError("the chat template renders a conversation out of order")
    user_part = sys_user[len(sys_only) :]
    default_system = user_only[: len(user_only) - len(user_part)]
    if not user_only.endswith(user_part):
        raise ChatTemplateError("the chat template renders a user turn differently alone")
    pieces = ChatPieces(
        system=_around(sys_only, MARK_SYSTEM),
        user=_around(user_part, MARK_USER),
        assistant=_around(sys_user_asst[len(sys_user) :], MARK_ASSISTANT),
        generation_prompt=sys_user_gen[len(sys_user) :],
        default_system=default_system,
    )
    probe = [system, user, assistant, {"role": "user", "content": MARK_USER}]
    if pieces.render(probe) != _render(tokenizer, chat_template, probe, True):
        raise ChatTemplateError("the chat template's turns depend on their position")
    return pieces
