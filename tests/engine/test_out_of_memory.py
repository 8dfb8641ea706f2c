"""A step that runs out of memory is trained again with half the micro-batch and twice
the accumulation (the same effective batch and loss), down to one example; then the run
fails saying what to change. Real allocations fail: the child process's address space
is capped (RLIMIT_AS) once its model is loaded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.engine.train.loop import is_out_of_memory, split_examples

CHILD = Path(__file__).with_name("oom_child.py")
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
]


def test_a_micro_batch_splits_into_even_consecutive_pieces():
    assert split_examples(list(range(8)), 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert split_examples(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split_examples(list(range(3)), 8) == [[0], [1], [2]]


def test_what_counts_as_out_of_memory():
    import torch

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )
    )
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.fixture(scope="module")
def long_rows(tmp_path_factory) -> Path:
    import random

    rng = random.Random(0)
    path = tmp_path_factory.mktemp("oom") / "rows.jsonl"
    with path.open("w") as fh:
        for i in range(16):
            output = " ".join(rng.choice(WORDS) for _ in range(300))
            fh.write(json.dumps({"instruction": f"Repeat {i}", "input": "", "output": output}))
            fh.write("\n")
    return path


def run_child(model_dir, data, out, extra_mb: float, batch: int = 8) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            str(model_dir),
            str(data),
            str(out),
            str(extra_mb),
            str(batch),
            "128",
            "2",
        ],
        # One malloc arena: the address space follows the allocations, not the threads.
        # The child chooses its threads as a worker does (not the engine tests' pin of
        # one): in one full-suite run the pinned child died of SIGSEGV under the cap
        # (not reproduced alone; the unpinned child passed every run).
        env={
            **{k: v for k, v in os.environ.items() if k != "SLMLAB_TORCH_THREADS"},
            "MALLOC_ARENA_MAX": "1",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_out_of_memory_halves_the_micro_batch_and_keeps_the_loss(
    bundled_model_dir, long_rows, tmp_path
):
    free = run_child(bundled_model_dir, long_rows, tmp_path / "free", 0)
    assert free["outcome"] == "completed", free["error"]
    # Caps a little below what the whole micro-batch of 8 took, lower each time, until
    # one makes the run back off (how much room the smaller micro-batches need beside
    # the address space a failed attempt leaves depends on the machine).
    tried = []
    for share in (0.9, 0.8, 0.7, 0.6):
        capped = run_child(
            bundled_model_dir, long_rows, tmp_path / f"capped-{share}", free["grew_mb"] * share
        )
        assert capped["capped"], "the cap was never set"
        backoffs = [line for line in capped["log"] if line.startswith("out of memory at step 1")]
        tried.append((share, capped["outcome"], len(backoffs), capped["error"]))
        if backoffs and capped["outcome"] == "completed":
            break
    else:
        pytest.fail(f"no cap made the run back off and complete: {tried}")
    assert "micro-batches of 8" in backoffs[0]
    assert "(the same effective batch)" in backoffs[-1]
    assert not any("out of memory" in line for line in free["log"])
    # The same two steps: the same data, the same mean loss over each window.
    assert capped["losses"] == pytest.approx(free["losses"], rel=1e-3)


@pytest.mark.slow
def test_a_step_that_never_fits_fails_with_what_to_change(bundled_model_dir, long_rows, tmp_path):
    result = run_child(bundled_model_dir, long_rows, tmp_path / "tight", 20)
    assert result["outcome"] == "error"
    assert result["error"].startswith("OutOfMemory: out of memory at step 1 even with ")
    assert "lower the sequence length" in result["error"]
    assert "peak" in result["error"]
    assert any("micro-batches of 1 " in line for line in result["log"])
