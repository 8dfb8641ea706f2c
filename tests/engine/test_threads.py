"""The thread count follows the cores other processes leave free (training.engine.train.threads)."""

import os
import subprocess
import time

import pytest
import torch

from training.engine.train import threads

STAT = """cpu  500 0 300 9000 10 0 0 0 0 0
cpu0 100 0 100 4000 5 0 0 0 0 0
cpu1 400 0 200 5000 5 0 0 50 0 0
intr 12345
"""


@pytest.fixture(autouse=True)
def free_cores(monkeypatch):
    """These tests are of the free-core choice: the engine tests' pin is lifted."""
    monkeypatch.delenv("SLMLAB_TORCH_THREADS", raising=False)


def test_busy_time_counts_only_our_cores_and_leaves_idle_and_iowait_out():
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert threads.busy_seconds([0], STAT) == pytest.approx(200 * tick)
    assert threads.busy_seconds([0, 1], STAT) == pytest.approx(850 * tick)  # steal is busy


def test_other_processes_use_is_the_busy_time_that_is_not_ours():
    before = threads.Sample(wall_s=10.0, busy_s=100.0, own_s=50.0)
    after = threads.Sample(wall_s=12.0, busy_s=104.0, own_s=52.0)
    assert threads.others_cores(before, after) == pytest.approx(1.0)
    assert threads.others_cores(after, after) == 0.0


@pytest.mark.parametrize(
    ("cores", "others", "expected"),
    [
        (2, 0.0, 2),
        (2, 0.3, 2),  # a light neighbour (a web process) leaves both cores
        (2, 0.6, 1),  # a CPU-bound one sharing a core with a spinning thread
        (2, 1.0, 1),
        (2, 2.0, 1),  # never fewer than one
        (16, 1.0, 15),
        (16, 3.5, 12),
    ],
)
def test_a_thread_goes_for_each_core_others_keep_busy(cores, others, expected):
    assert threads.choose_threads(cores, others) == expected


@pytest.mark.skipif(len(threads.usable_cores()) < 2, reason="needs two cores")
def test_a_busy_core_takes_a_thread_away_before_the_next_optimizer_step():
    cores = threads.usable_cores()
    assert threads.configure() == len(cores)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    hog = subprocess.Popen(
        ["yes"],
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {cores[0]}),
    )
    try:
        deadline = time.monotonic() + 20
        while torch.get_num_threads() == len(cores) and time.monotonic() < deadline:
            param.grad = torch.ones(1)
            optimizer.step()  # the engine's policy runs before every step, on this thread
            time.sleep(0.1)
        assert torch.get_num_threads() <= len(cores) - 1
    finally:
        hog.kill()
        hog.wait()
        threads.configure()


def test_a_pinned_thread_count_holds_whatever_the_load(monkeypatch):
    monkeypatch.setenv("SLMLAB_TORCH_THREADS", "1")
    try:
        assert threads.configure() == 1 and torch.get_num_threads() == 1
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=0.1)
        for _ in range(3):
            param.grad = torch.ones(1)
            optimizer.step()
            assert threads.adjust() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("SLMLAB_TORCH_THREADS", "two")
        with pytest.raises(ValueError, match="SLMLAB_TORCH_THREADS must be a whole number"):
            threads.configure()
    finally:
        monkeypatch.delenv("SLMLAB_TORCH_THREADS")
        threads.configure()
