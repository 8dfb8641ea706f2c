"""Export time, file size and verification figures per export kind for the bundled model.

Converts the bundled SmolLM2-135M-Instruct (once, into a throwaway store unless
SLMLAB_MODEL_STORE names one), makes a small random LoRA adapter on every linear layer
(a stand-in for a trained one: it changes the answers, and merging it must keep them),
then runs each export exactly as the CPU worker does, verification included, and prints
a Markdown table.

    .venv/bin/python bench/export.py [--kinds merged-bf16,gguf-f16,gguf-q8_0,gguf-q4_0,gguf-q4_k_m]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.exports.helpers import write_adapter  # noqa: E402
from training.engine.export import pipeline  # noqa: E402
from training.engine.models.store import import_bundled_model  # noqa: E402

KINDS = "merged-bfloat16,merged-float32,gguf-f16,gguf-q8_0,gguf-q4_0,gguf-q4_k_m"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default=KINDS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="slmlab-bench-export-"))
    store = Path(os.environ.get("SLMLAB_MODEL_STORE") or work / "models")
    base = import_bundled_model(store)
    adapter = write_adapter(base, work / "adapter", scale=0.02)
    rows = []
    for kind in args.kinds.split(","):
        family, variant = kind.split("-", 1)
        out = work / kind
        start = time.perf_counter()
        try:
            if family == "merged":
                result = pipeline.export_merged(base, adapter, out, variant)
            else:
                result = pipeline.export_gguf(base, adapter, out, variant, f"smollm2-{variant}")
            error = ""
        except Exception as exc:  # a failed verification is a figure too
            result, error = getattr(exc, "report", {}), f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        size = pipeline.folder_size(out) if out.exists() else 0
        rows.append((kind, seconds, size, result, error))
        print(f"{kind}: {seconds:.1f} s, {size / 2**20:.1f} MB {error}", file=sys.stderr)
    print("| export | time | size | answers equal | next-token agreement | mean KL | chat stops |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, seconds, size, result, error in rows:
        prompts = result.get("prompts", [])
        equal = f"{sum(1 for p in prompts if p['equal'])}/{len(prompts)}" if prompts else "-"
        agreement = result.get("token_agreement")
        kl = result.get("mean_kl")
        stops = result.get("chat_stopped_at_eos")
        print(
            f"| {kind} | {seconds:.1f} s | {size / 2**20:.1f} MB | {equal} | "
            f"{'-' if agreement is None else f'{agreement:.3f}'} | "
            f"{'-' if kl is None else f'{kl:.4f}'} | "
            f"{'-' if stops is None else ('yes' if stops else 'no')} |"
            + (f" failed: {error[:80]}" if error else "")
        )


if __name__ == "__main__":
    main()
