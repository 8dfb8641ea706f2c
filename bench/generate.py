"""Batched vs one-at-a-time generation on the bundled model: examples/s, tokens/s, and
whether greedy outputs are identical.

    python bench/generate.py [--prompts 64] [--max-new-tokens 48] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from training.engine.data.samples import sample_rows
    from training.engine.data.shapes import Record, Turn
    from training.engine.data.tokenize import prompt_ids
    from training.engine.inference.generate import GenerationSettings, generate
    from training.engine.models import store
    from training.engine.train import threads

    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--store", default=os.environ.get("SLMLAB_MODEL_STORE", "/tmp/slmlab-bench")
    )
    args = parser.parse_args()

    threads.configure()
    model_dir = store.import_bundled_model(Path(args.store))
    model, tokenizer = store.load_model_and_tokenizer(model_dir, quantization="none", device="cpu")
    model.eval()
    rows = sample_rows(args.prompts, seed=7)
    records = [
        Record([Turn("user", r["instruction"]), Turn("assistant", r["output"])], "", None, r)
        for r in rows
    ]
    prompts = [prompt_ids(tokenizer, r, "model") for r in records]
    results = {}
    for name, batch_size in (
        ("one at a time", 1),
        (f"batched ({args.batch_size})", args.batch_size),
    ):
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=batch_size)
        began = time.perf_counter()
        out = generate(model, tokenizer, prompts, settings)
        elapsed = time.perf_counter() - began
        tokens = sum(g.tokens for g in out)
        results[name] = (out, elapsed)
        print(
            f"{name:>16}: {len(out) / elapsed:6.2f} examples/s  {tokens / elapsed:7.1f} "
            f"generated tokens/s  ({elapsed:.1f} s, {tokens} tokens)"
        )
    (single, t1), (batched, t2) = results.values()
    same = sum(a.text == b.text for a, b in zip(single, batched, strict=True))
    print(f"speed-up {t1 / t2:.1f}x; identical greedy outputs: {same}/{len(single)}")
    for a, b in zip(single, batched, strict=True):
        if a.text != b.text:
            print(f"  differs: {a.text!r} vs {b.text!r}")


if __name__ == "__main__":
    main()
