"""How many threads the CPU kernels use: the cores this process may run on that no other
process keeps busy, chosen again before every optimizer step.

A parallel region (OpenMP, which torch's CPU kernels use) ends when its slowest thread
ends, and idle threads spin waiting for the next one. With as many threads as cores
and one core busy elsewhere, the thread sharing that core runs only in the
scheduler's time slices, and every region waits for it: on two cores, one busy core
made training 4-30x slower, not 2x (``bench/contention.py``). One thread fewer than
cores gets back the speed of the free cores; a quiet machine keeps every core.

What other processes used is read from /proc/stat (the cores in this process's
affinity) minus this process's own CPU time, over the last step. ``torch`` sets the
thread count per calling thread, so the check runs on the training thread itself:
from a global optimizer step pre-hook, the one call every training step makes.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

# Other processes' use of a core above this share takes that core's thread away:
# a CPU-bound process sharing a core with a spinning thread gets about 0.5-0.7 of it.
BUSY_SHARE = 0.4
# Decisions over shorter windows would follow the noise of a single step.
MIN_WINDOW_S = 0.5
PROC_STAT = Path("/proc/stat")

_state = threading.local()
_hook_lock = threading.Lock()
_hook = None


@dataclass(frozen=True)
class Sample:
    wall_s: float
    busy_s: float  # CPU time all processes spent on our cores
    own_s: float  # this process's CPU time


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def busy_seconds(cores: list[int], stat: str | None = None) -> float | None:
    """CPU seconds spent busy on ``cores`` since boot; None where /proc/stat is missing."""
    try:
        text = PROC_STAT.read_text() if stat is None else stat
    except OSError:
        return None
    wanted = {f"cpu{n}" for n in cores}
    ticks = 0
    for line in text.splitlines():
        name, *fields = line.split()
        if name in wanted:
            # user nice system idle iowait irq softirq steal (guest is inside user)
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


def sample(cores: list[int]) -> Sample | None:
    busy = busy_seconds(cores)
    if busy is None:
        return None
    times = os.times()
    return Sample(time.monotonic(), busy, times.user + times.system)


def others_cores(before: Sample, after: Sample) -> float:
    """How many cores other processes kept busy between two samples."""
    wall = after.wall_s - before.wall_s
    if wall <= 0:
        return 0.0
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return max(0.0, others / wall)


def choose_threads(cores: int, others: float) -> int:
    """Every core but those other processes keep busy (more than BUSY_SHARE of one)."""
    taken = max(0, math.floor(others + 1 - BUSY_SHARE))
    return max(1, cores - taken)


def pinned() -> int | None:
    """The thread count ``SLMLAB_TORCH_THREADS`` fixes (None: follow the free cores).

    A run's numbers then no longer depend on the machine's load: a different thread
    count changes the order of floating-point sums, and Adam turns such last-bit
    differences in near-zero gradients into whole steps, so two runs of one seed part
    after a few steps (measured: 0.1 % of the loss at step 3). Set it where runs must
    reproduce exactly; it gives up the speed the free-core choice keeps under load."""
    value = os.environ.get("SLMLAB_TORCH_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SLMLAB_TORCH_THREADS must be a whole number of 1 or more, not {value!r}")
    return int(value)


class Policy:
    """The training thread's thread count and the sample it was last chosen from."""

    def __init__(self, cores: list[int]) -> None:
        self.cores = cores
        self.fixed = pinned()
        self.threads = self.fixed or len(cores)
        self.last = sample(cores)

    def adjust(self) -> int:
        if self.fixed:
            return self.threads
        now = sample(self.cores)
        if now is None or self.last is None:
            return self.threads
        if now.wall_s - self.last.wall_s < MIN_WINDOW_S:
            return self.threads
        threads = choose_threads(len(self.cores), others_cores(self.last, now))
        self.last = now
        if threads != self.threads:
            self.threads = threads
            torch.set_num_threads(threads)
        return threads


def configure() -> int:
    """Start this thread's training with every usable core; adjust before each step."""
    policy = Policy(usable_cores())
    _state.policy = policy
    torch.set_num_threads(policy.threads)
    _install_hook()
    return policy.threads


def adjust() -> int | None:
    """Re-choose the calling thread's count (None: ``configure`` never ran on it)."""
    policy = getattr(_state, "policy", None)
    return None if policy is None else policy.adjust()


def _before_optimizer_step(_optimizer, _args, _kwargs) -> None:
    adjust()


def _install_hook() -> None:
    global _hook
    with _hook_lock:
        if _hook is None:
            _hook = register_optimizer_step_pre_hook(_before_optimizer_step)
