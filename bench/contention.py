"""Training speed under CPU contention: a quiet machine against one core kept busy.

Each run is a fresh child process training the bundled model with the engine
(``training.engine.train.loop.train``) on the lab's JSON-answer sample, by default the
crash-resume end-to-end test's run (no quantization, batch 2, 64 tokens). The busy
core is a ``yes > /dev/null`` child, pinned to the first usable core or left to the
scheduler. Two thread policies:

- ``before``: as many torch threads as usable cores, fixed (the engine up to 2026-12);
- ``after``: the engine's policy (``training.engine.train.threads``): cores that other
  processes leave free, chosen again before every optimizer step.

    .venv/bin/python bench/contention.py [--steps 8] [--rounds 2] [--hogs none,pinned,unpinned]
        [--policies before,after] [--long]   # --long: bench/train_throughput's data, batch 8 x 512

Printed per run: real (non-pad) tokens/s over the steps after the first (the first
step carries one-off warm-up costs), seconds per step, the torch threads at the end,
and ``others``: the cores other processes used during the run (the hog included; on
a quiet run anything above ~0.05 means the machine was not quiet). The summary gives
each policy's speed with the hog as a share of its quiet speed, and ``after`` against
``before``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# --- child: one training run ---------------------------------------------------------------


def child(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from training.engine.config import RunConfig
    from training.engine.train import threads
    from training.engine.train.loop import TrainHooks, train

    if args.child == "before":

        def every_core() -> int:
            torch.set_num_threads(len(threads.usable_cores()))
            return torch.get_num_threads()

        threads.configure = every_core
    metrics: list[Any] = []
    config = RunConfig(
        model_dir=args.model_dir,
        dataset_path=args.data,
        output_dir=tempfile.mkdtemp(prefix="slmlab-contention-"),
        quantization=args.quantization,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_seq_len=args.max_seq_len,
        lora_dropout=0.0,
        checkpoint_every=0,
        seed=args.seed,
    )
    train(config, TrainHooks(on_metrics=metrics.append))
    timed = metrics[1:]
    seconds = timed[-1].elapsed_s - metrics[0].elapsed_s
    return {
        "tok_s": sum(m.tokens for m in timed) / seconds,
        "step_s": seconds / len(timed),
        "threads": torch.get_num_threads(),
    }


# --- parent: hogs, children, accounting ----------------------------------------------------


def start_hog(kind: str, cores: list[int]) -> subprocess.Popen | None:
    if kind == "none":
        return None
    pin = (lambda: os.sched_setaffinity(0, {cores[0]})) if kind == "pinned" else None
    return subprocess.Popen(["yes"], stdout=subprocess.DEVNULL, preexec_fn=pin)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_child(args: argparse.Namespace, policy: str, hog: str, model_dir: Path, data: Path):
    from training.engine.train import threads

    cores = threads.usable_cores()
    command = [
        sys.executable, __file__, "--child", policy, "--model-dir", str(model_dir),
        "--data", str(data), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--max-seq-len", str(args.max_seq_len), "--quantization", args.quantization,
        "--seed", str(args.seed),
    ]  # fmt: skip
    hog_proc = start_hog(hog, cores)
    with tempfile.TemporaryFile(mode="w+") as out:
        try:
            before = threads.sample(cores)
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            _, status, usage = os.wait4(proc.pid, 0)
            after = threads.sample(cores)
        finally:
            if hog_proc is not None:
                hog_proc.kill()
                hog_proc.wait()
        out.seek(0)
        text = out.read()
    lines = [x for x in text.splitlines() if x.startswith("RESULT ")]
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        sys.exit(f"{policy} run ({hog}) failed:\n{text[-5000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    wall = after.wall_s - before.wall_s
    child_s = usage.ru_utime + usage.ru_stime
    result["others"] = max(0.0, (after.busy_s - before.busy_s - child_s) / wall)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hogs", default="none,pinned,unpinned")
    parser.add_argument("--policies", default="before,after")
    parser.add_argument("--long", action="store_true", help="train_throughput's data, 8 x 512")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=64)
    parser.add_argument("--quantization", default="none")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return

    from training.engine.data import samples
    from training.engine.models.store import import_bundled_model
    from training.engine.train import threads

    store_dir = Path(os.environ.get("SLMLAB_MODEL_STORE", ROOT / "data" / "models"))
    model_dir = import_bundled_model(store_dir)
    work = Path(tempfile.mkdtemp(prefix="slmlab-contention-"))
    if args.long:
        from transformers import AutoTokenizer

        sys.path.insert(0, str(ROOT / "bench"))
        from train_throughput import write_dataset

        args.batch_size, args.max_seq_len = 8, 512
        data = work / "long.jsonl"
        write_dataset(data, 400, AutoTokenizer.from_pretrained(model_dir), seed=1)
    else:
        data = samples.write_sample_dataset(work / "sample.jsonl")
    cores = threads.usable_cores()
    print(f"model {model_dir.name}; {data.name}; batch {args.batch_size} x {args.max_seq_len} "
          f"tokens, {args.quantization}; {args.steps} steps; cores {cores}; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'hog':9} {'policy':7} {'real tok/s':>10} {'s/step':>7} {'threads':>7} {'others':>6}")
    hogs, policies = args.hogs.split(","), args.policies.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for hog in hogs:
            for policy in policies:
                r = run_child(args, policy, hog, model_dir, data)
                results.setdefault((hog, policy), []).append(r)
                print(f"{hog:9} {policy:7} {r['tok_s']:10.1f} {r['step_s']:7.2f} "
                      f"{r['threads']:7d} {r['others']:6.2f}", flush=True)  # fmt: skip

    def speed(hog: str, policy: str) -> float:
        return statistics.mean(r["tok_s"] for r in results[(hog, policy)])

    print("\nsummary (means over rounds; share: of the same policy's quiet speed)")
    print(f"{'hog':9} " + " ".join(f"{p + ' tok/s':>12} {'share':>6}" for p in policies)
          + ("  after/before" if policies == ["before", "after"] else ""))  # fmt: skip
    for hog in hogs:
        cells = []
        for policy in policies:
            share = speed(hog, policy) / speed("none", policy) if "none" in hogs else 0.0
            cells.append(f"{speed(hog, policy):12.1f} {100 * share:5.0f}%")
        line = f"{hog:9} " + " ".join(cells)
        if policies == ["before", "after"]:
            line += f"  {speed(hog, 'after') / speed(hog, 'before'):11.2f}x"
        print(line)


if __name__ == "__main__":
    main()
