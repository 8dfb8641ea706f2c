"""An Ollama ``Modelfile`` for a GGUF export: FROM, TEMPLATE, PARAMETER stop.

The TEMPLATE is Ollama's Go template for the same text the model's chat template
renders (cut into pieces by :func:`chat_pieces`), so ``ollama create`` gives a model
prompted exactly like the lab's chat; ``stop`` is the end-of-turn token.
"""

from __future__ import annotations

from training.engine.export.chat_template import ChatPieces


def _go_text(text: str) -> str:
    """Literal text inside a Go template (only ``{{`` needs escaping)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(pieces: ChatPieces) -> str:
    if pieces.single_turn:
        before, after = pieces.user
        return f"{_go_text(before)}{{{{ .Prompt }}}}{_go_text(after)}"
    sys_before, sys_after = pieces.system
    user_before, user_after = pieces.user
    asst_before, asst_after = pieces.assistant
    return (
        f"{{{{- if .System }}}}{_go_text(sys_before)}{{{{ .System }}}}{_go_text(sys_after)}"
        f"{{{{- else }}}}{_go_text(pieces.default_system)}{{{{- end }}}}"
        "{{- range $i, $m := .Messages }}"
        '{{- if eq $m.Role "user" }}'
        f"{_go_text(user_before)}{{{{ $m.Content }}}}{_go_text(user_after)}"
        '{{- else if eq $m.Role "assistant" }}'
        f"{_go_text(asst_before)}{{{{ $m.Content }}}}{_go_text(asst_after)}"
        "{{- end }}{{- end }}"
        f"{_go_text(pieces.generation_prompt)}"
    )


def modelfile(gguf_name: str, pieces: ChatPieces, stop_tokens: list[str]) -> str:
    """The Modelfile text for ``gguf_name`` (a file beside it)."""
    template = go_template(pieces)
    if '"""' in template:
        raise ValueError("the chat template contains triple quotes, which a Modelfile cannot hold")
    lines = [
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
        *[f'PARAMETER stop "{token}"' for token in stop_tokens if token],
        "PARAMETER temperature 0",
        "",
    ]
    return "\n".join(lines)
