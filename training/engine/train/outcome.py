"""How a training attempt ends: one vocabulary from the engine to ``Run.Status`` to MLflow."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The values are ``Run.Status`` values, except LOST, which changes no run."""

    COMPLETED = "completed"
    # Stopped at the run's time limit: adapter and checkpoint saved.
    TIMED_OUT = "timed_out"
    # Stopped by its owner: nothing is kept.
    CANCELLED = "cancelled"
    # Its worker is going away (SIGTERM): checkpointed where it was, resumes elsewhere.
    INTERRUPTED = "interrupted"
    # Another worker took the run over (this one was thought dead): nothing is written.
    LOST = "lost"

    @property
    def saves_adapter(self) -> bool:
        return self in (Outcome.COMPLETED, Outcome.TIMED_OUT)
