"""A generation's thread count: every core first, then the cores others leave free."""

from __future__ import annotations

import threading

import pytest
import torch

from training.engine.inference import cores
from training.engine.train import threads


@pytest.fixture(autouse=True)
def free_cores(monkeypatch):
    """These tests are of the free-core choice: the engine tests' pin is lifted."""
    monkeypatch.delenv("SLMLAB_TORCH_THREADS", raising=False)


def test_a_thread_starts_with_every_core_then_follows_what_others_leave(monkeypatch) -> None:
    usable = threads.usable_cores()
    before = torch.get_num_threads()
    counts = []

    def generate_twice() -> None:
        counts.append(cores.use_free_cores())
        # Other processes kept every core busy since the last choice.
        policy = cores._local.policy
        busy = policy.last.busy_s + 10.0 * len(usable)
        monkeypatch.setattr(
            threads,
            "sample",
            lambda _cores: threads.Sample(policy.last.wall_s + 10.0, busy, policy.last.own_s),
        )
        counts.append(cores.use_free_cores())
        counts.append(torch.get_num_threads())

    thread = threading.Thread(target=generate_twice)
    thread.start()
    thread.join()
    torch.set_num_threads(before)  # the count threads started later take

    assert counts == [len(usable), 1, 1]
