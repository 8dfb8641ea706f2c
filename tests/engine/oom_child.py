"""A training run in a process of its own whose address space is capped once the model
is loaded (RLIMIT_AS), so that a real allocation of a big micro-batch fails.

    python tests/engine/oom_child.py MODEL_DIR DATA OUT LIMIT_MB BATCH SEQ STEPS
LIMIT_MB 0: no cap. Prints one JSON line: the losses, the log and the outcome.
"""

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.engine.config import RunConfig
from training.engine.train.loop import TrainHooks, train


def vm_mb(field: str = "VmSize") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def main() -> None:
    model_dir, data, out, limit_mb, batch, seq, steps = sys.argv[1:8]
    lines: list[str] = []
    losses: list[float] = []
    capped = {}

    def on_log(line: str) -> None:
        lines.append(line)
        if line.startswith("training ") and not capped:
            # The model and data are loaded: from here on, at most LIMIT_MB more.
            capped["at_mb"] = vm_mb()
            if float(limit_mb):
                cap = int((vm_mb() + float(limit_mb)) * 2**20)
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    config = RunConfig(
        model_dir=model_dir,
        dataset_path=data,
        output_dir=out,
        quantization="none",
        # fp32: the test compares losses of different micro-batch splits; under bf16
        # autocast (this CPU has it) the split alone moved step 1's loss by 0.12 %.
        autocast="float32",
        batch_size=int(batch),
        max_seq_len=int(seq),
        max_steps=int(steps),
        learning_rate=1e-4,
        warmup_ratio=0.0,
        lora_dropout=0.0,
        checkpoint_every=0,
    )
    hooks = TrainHooks(on_log=on_log, on_metrics=lambda m: losses.append(m.loss))
    try:
        result = train(config, hooks)
        outcome, error = str(result.status), None
    except Exception as exc:
        outcome, error = "error", f"{type(exc).__name__}: {exc}"
    print(
        json.dumps(
            {
                "losses": losses,
                "log": lines,
                "outcome": outcome,
                "error": error,
                "capped": capped,
                "grew_mb": vm_mb("VmPeak") - capped.get("at_mb", 0),
            }
        )
    )


if __name__ == "__main__":
    main()
