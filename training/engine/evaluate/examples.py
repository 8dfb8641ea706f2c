"""What an eval set's row must hold: an expected output (light: the web process checks
uploaded eval files with it, and must not import torch)."""

from __future__ import annotations

from training.engine.data.shapes import Record


class EvalError(ValueError):
    """An eval set or settings that cannot be evaluated; the message says what to fix."""


def expected_output(record: Record) -> str:
    if record.text is not None:
        raise EvalError(
            "plain-text rows have no expected output: an eval set needs rows with a prompt "
            "and an answer (instruction/output, prompt/completion or chat messages)"
        )
    answers = [t.content for t in record.turns if t.role == "assistant"]
    if not answers or not answers[-1].strip():
        raise EvalError("every row of an eval set needs an expected output")
    return answers[-1]
