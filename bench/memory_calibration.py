"""Check the memory estimator against real peak memory on this CPU.

For each setting a fresh Python process loads the bundled SmolLM2-135M from the model
store and runs a few real training steps through ``training.engine.train.train``; its
peak resident set is compared with ``estimate_memory(..., "cpu")``. The peak is the
child's own high-water mark (``VmHWM``), split at the end of loading into the load peak
and the training-step peak. Not ``ru_maxrss``: exec copies the spawning process's peak
into it, so after this script (or a pytest session) has converted the bundled GGUF, a
small setting "measured" the parent's 1-2 GB instead of its own peak.
The dataset's answers are longer than any ``max_seq_len`` tried, so every row is cut
to exactly ``max_seq_len`` tokens and the batch shape is the one estimated.

    .venv/bin/python bench/memory_calibration.py [--full] [--steps 2] [--json out.json]

``--baseline`` only measures the runtime's resident set after imports (the estimator's
``CPU_RUNTIME_MB``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUANTIZATIONS = {
    "4bit-nf4-dq": {"quantization": "4bit", "quant_type": "nf4", "double_quant": True},
    "4bit-fp4": {"quantization": "4bit", "quant_type": "fp4", "double_quant": False},
    "8bit": {"quantization": "8bit"},
    "none": {"quantization": "none"},
}
# (max_seq_len, batch_size). 512 x 4 is left out by default: about 8 minutes a step
# setting on a 2-core CPU, and 128 x 4 already covers 512 tokens a step.
GRID = ((128, 1), (128, 4), (512, 1))
FULL_GRID = ((128, 1), (128, 4), (512, 1), (512, 4))


def peak_rss_mb() -> float:
    from training.engine.train.process import memory_mb

    return memory_mb()[1]


def inherited_peak_mb() -> float:
    """``ru_maxrss``, which counts the spawning process's peak too (shown, not used)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_dataset(path: Path, rows: int) -> None:
    """Rows whose answers run past 512 tokens, so truncation fixes every row's length."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex"
    with path.open("w") as fh:
        for n in range(rows):
            answer = " ".join(f"{words} {n}-{k}." for k in range(60))
            fh.write(
                json.dumps({"instruction": f"Write a long text number {n}.", "output": answer})
            )
            fh.write("\n")


def child_baseline() -> dict:
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import training.engine.train  # noqa: F401

    return {"peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": inherited_peak_mb()}


def child_train(spec: dict) -> dict:
    from training.engine.config import RunConfig
    from training.engine.train.loop import TrainHooks, train
    from training.engine.train.process import reset_peak_memory

    config = RunConfig(**spec)
    marks: dict[str, float] = {}

    def on_log(line: str) -> None:
        if line.startswith("trainable params"):  # loaded, LoRA attached: steps next
            marks["loaded_peak_mb"] = peak_rss_mb()
            reset_peak_memory()

    result = train(config, TrainHooks(on_log=on_log))
    step_peak = peak_rss_mb()
    return {
        "peak_rss_mb": max(step_peak, marks.get("loaded_peak_mb", 0.0)),
        "step_peak_mb": step_peak,
        "ru_maxrss_mb": inherited_peak_mb(),
        "steps": result.steps,
        **marks,
    }


def run_child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="add 512 x 4 (slow)")
    parser.add_argument("--grid", help="settings as SEQxBATCH, comma-separated: 128x1,512x1")
    parser.add_argument("--only", help="comma-separated quantization labels to run")
    parser.add_argument(
        "--measured", help="re-estimate the measurements saved by an earlier --json run"
    )
    parser.add_argument(
        "--autocast",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the runs' autocast setting (auto: bf16 on CPUs with native bf16)",
    )
    parser.add_argument("--store", default=os.environ.get("SLMLAB_MODEL_STORE"))
    parser.add_argument("--json", help="also write the table as JSON here")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        spec = json.loads(args.child)
        out = child_baseline() if spec == "baseline" else child_train(spec)
        print(json.dumps(out))
        return

    from training.engine.models.arch import arch_from_config_dict
    from training.engine.models.memory import CPU_RUNTIME_MB, estimate_memory
    from training.engine.models.store import import_bundled_model

    if args.measured:
        baseline = json.loads(Path(args.measured).read_text())["baseline_mb"]
    else:
        baseline = run_child(["--child", json.dumps("baseline")])["peak_rss_mb"]
    print(f"runtime baseline after imports: {baseline:.0f} MB (CPU_RUNTIME_MB = {CPU_RUNTIME_MB})")
    from training.engine.train.speed import cpu_has_fast_bf16

    print(f"autocast {args.autocast}; this CPU runs bf16 natively: {cpu_has_fast_bf16()}")
    if args.baseline:
        return

    store = Path(args.store) if args.store else ROOT / "data" / "models"
    model_dir = import_bundled_model(store)
    config_json = json.loads((model_dir / "config.json").read_text())
    arch = arch_from_config_dict(config_json)
    checkpoint_dtype = config_json.get("dtype") or config_json.get("torch_dtype") or "float32"

    work = Path(tempfile.mkdtemp(prefix="slmlab-memcal-"))
    dataset = work / "long.jsonl"
    write_dataset(dataset, rows=4 * args.steps + 4)
    grid = FULL_GRID if args.full else GRID
    if args.grid:
        grid = tuple(tuple(int(n) for n in cell.split("x")) for cell in args.grid.split(","))
    labels = args.only.split(",") if args.only else list(QUANTIZATIONS)
    earlier = {}
    if args.measured:
        for r in json.loads(Path(args.measured).read_text())["rows"]:
            earlier[(r["quantization"], r["max_seq_len"], r["batch_size"])] = r
    rows = []
    header = f"{'quantization':<13}{'seq':>5}{'batch':>6}{'estimate':>10}{'measured':>10}"
    print(header + f"{'error':>8}{'loaded':>8}{'steps':>8}{'maxrss':>8}{'secs':>6}")
    for label in labels:
        quant = QUANTIZATIONS[label]
        for seq, batch in grid:
            spec = {
                "model_dir": str(model_dir),
                "dataset_path": str(dataset),
                "output_dir": str(work / f"{label}-{seq}-{batch}"),
                "max_steps": args.steps,
                "batch_size": batch,
                "max_seq_len": seq,
                "warmup_ratio": 0.0,
                "autocast": args.autocast,
                **quant,
            }
            started = time.perf_counter()
            if args.measured:
                if (label, seq, batch) not in earlier:
                    continue
                old = earlier[(label, seq, batch)]
                measured = {
                    "peak_rss_mb": old["measured_mb"],
                    "loaded_peak_mb": old["loaded_peak_mb"],
                    "step_peak_mb": old.get("step_peak_mb", 0),
                    "ru_maxrss_mb": old.get("ru_maxrss_mb", 0),
                }
            else:
                measured = run_child(["--child", json.dumps(spec)])
            secs = time.perf_counter() - started
            est = estimate_memory(
                arch,
                _settings(spec),
                device="cpu",
                checkpoint_dtype=checkpoint_dtype,
                cpu_bf16=cpu_has_fast_bf16(),
            )
            error = 100 * (est.total_mb - measured["peak_rss_mb"]) / measured["peak_rss_mb"]
            row = {
                "quantization": label,
                "max_seq_len": seq,
                "batch_size": batch,
                "estimate_mb": round(est.total_mb),
                "measured_mb": round(measured["peak_rss_mb"]),
                "error_pct": round(error, 1),
                "loaded_peak_mb": round(measured.get("loaded_peak_mb", 0)),
                "step_peak_mb": round(measured.get("step_peak_mb", 0)),
                "ru_maxrss_mb": round(measured.get("ru_maxrss_mb", 0)),
                "breakdown": est.breakdown(),
            }
            rows.append(row)
            print(
                f"{label:<13}{seq:>5}{batch:>6}{row['estimate_mb']:>10}{row['measured_mb']:>10}"
                f"{error:>+7.1f}%{row['loaded_peak_mb']:>8}{row['step_peak_mb']:>8}"
                f"{row['ru_maxrss_mb']:>8}{secs:>6.0f}",
                flush=True,
            )
    worst = max(abs(r["error_pct"]) for r in rows)
    print(f"worst error: {worst:.1f}% (target: within 20%)")
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline_mb": baseline, "rows": rows}, indent=2))


def _settings(spec: dict):
    from training.engine.config import RunConfig
    from training.engine.models.memory import MemorySettings

    return MemorySettings.from_config(RunConfig(**spec))


if __name__ == "__main__":
    main()
