"""How many threads a generation uses on a CPU worker: the cores other processes leave free.

Decoding one token is a chain of small matrix products, each a parallel region that
ends when its slowest thread does; a thread whose core another process keeps busy
holds every region up (see training.engine.train.threads, which makes the same choice
before each training step). Measured on the 2-core lab machine with other work running:
warm time to first token 0.3 s with one thread against 1.5-4 s with two.
"""

from __future__ import annotations

import threading

import torch

from training.engine.train import threads

_local = threading.local()


def use_free_cores() -> int:
    """Choose this thread's torch thread count before a generation (threads started
    after it, the generation's own among them, take it too); returns the count. The first call on a
    thread takes every core; later calls judge by what others used since the last."""
    policy = getattr(_local, "policy", None)
    if policy is None:
        policy = _local.policy = threads.Policy(threads.usable_cores())
        torch.set_num_threads(policy.threads)
    return policy.adjust()
