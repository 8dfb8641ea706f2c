"""Pretraining throughput: the lab's pretraining against a plain PyTorch + transformers loop.

Both train the same design (the Llama-style tiny preset by default, random weights from
the same seed) on the same texts (the project's pretraining corpus, tokenized by the
same 4k BPE, cut into the same sequences), in the same order, with the same batch
(examples per step), sequence length, optimizer (AdamW, the same learning rate,
warmup and cosine schedule, clipping at 1.0) and precision (fp32; bf16 autocast
only where both would take it). What differs is the loop:

- ours: ``training.engine.design.pretrain`` (the engine's Trainer: each micro-batch's
  sequences packed into as few rows as fit, with per-sequence positions and attention
  boundaries, the loss over real tokens only, fused AdamW);
- baseline: the textbook loop: each batch padded to its longest sequence with an
  attention mask, ``model(input_ids, attention_mask, labels)`` (pad labels -100),
  ``loss.backward()``, clip, ``torch.optim.AdamW`` (its default implementation),
  scheduler step.

Throughput counts real (non-pad) tokens per second of training time; MFU is the
design's exact training FLOPs per token (``training.engine.design.counts``) times
that, over the device's peak (``training.engine.train.peak``). Rounds alternate
ours/baseline so a busy machine slows both alike; the medians are printed, with the
ratio ours / baseline (target >= 1.5x).

    .venv/bin/python bench/pretrain.py [--steps 30] [--rounds 2] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from transformers import PreTrainedTokenizerFast, get_scheduler

from training.engine.design import corpus, counts, spec
from training.engine.design import tokenizer as design_tokenizer
from training.engine.design.build import build_model
from training.engine.design.pretrain import (
    PretrainSettings,
    autocast_dtype,
    examples_from_texts,
    pretrain,
)
from training.engine.train.loop import TrainHooks, configure_threads, iterate_batches
from training.engine.train.peak import device_peak_flops


def ours(design, tokenizer_dir, texts, settings: PretrainSettings, out: Path) -> dict:
    tokens: list[int] = []
    result = pretrain(
        design,
        tokenizer_dir,
        texts,
        out,
        settings,
        validation=[],
        hooks=TrainHooks(on_metrics=lambda m: tokens.append(m.tokens)),
    )
    return {
        "tok_s": result.tokens_per_second,
        "tokens": result.train_tokens,
        "seconds": result.elapsed_s,
        "loss": result.final_loss,
    }


def baseline(design, tokenizer_dir, texts, settings: PretrainSettings) -> dict:
    """The plain loop, on the same sequences in the same order."""
    configure_threads()
    torch.manual_seed(settings.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    model = build_model(
        design, seed=settings.seed, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id
    ).to(device)
    model.train()
    examples = examples_from_texts(tokenizer, texts, settings.sequence_length)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    scheduler = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=math.ceil(settings.warmup_ratio * settings.steps),
        num_training_steps=settings.steps,
    )
    dtype = autocast_dtype(settings.precision, device)
    batches = iterate_batches(examples, settings.batch_size, settings.seed)
    pad = tokenizer.pad_token_id
    real = 0
    began = time.perf_counter()
    for _ in range(settings.steps):
        _, batch = next(batches)
        width = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):
            n = len(example["input_ids"])
            ids[row, :n] = torch.tensor(example["input_ids"])
            mask[row, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        real += int(mask.sum())
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    return {"tok_s": real / seconds, "tokens": real, "seconds": seconds, "loss": float(loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--stories", type=int, default=2000)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--preset", default="llama-tiny", choices=sorted(spec.PRESETS))
    args = parser.parse_args()

    design = spec.PRESETS[args.preset]()
    texts = list(corpus.stories(args.stories, seed=0))
    work = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    design_tokenizer.train_tokenizer(texts, args.vocab, work / "tokenizer")
    settings = PretrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        sample_every=0,
        validation_share=0.0,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = autocast_dtype(settings.precision, device) is not None
    peak = device_peak_flops(device, bf16=bf16)
    flops = counts.training_flops_per_token(design, args.sequence_length)
    print(
        f"{args.preset}: {counts.total_parameters(design):,} parameters, "
        f"{flops / 1e6:.1f} MFLOP/token; batch {args.batch_size} x <= {args.sequence_length} "
        f"tokens, {args.steps} steps; {device}, {'bf16 autocast' if bf16 else 'fp32'}, "
        f"peak {peak / 1e9 if peak else float('nan'):.0f} GFLOP/s"
    )
    runs: dict[str, list[dict]] = {"ours": [], "baseline": []}
    for index in range(args.rounds):
        runs["ours"].append(ours(design, work / "tokenizer", texts, settings, work / f"o{index}"))
        runs["baseline"].append(baseline(design, work / "tokenizer", texts, settings))
        for side in ("ours", "baseline"):
            r = runs[side][-1]
            print(
                f"  round {index + 1} {side:>8}: {r['tok_s']:8.0f} tok/s "
                f"({r['tokens']:,} real tokens in {r['seconds']:.1f} s, last loss {r['loss']:.3f})"
            )
    median = {side: statistics.median(r["tok_s"] for r in rs) for side, rs in runs.items()}
    for side, tok_s in median.items():
        mfu = flops * tok_s / peak if peak else float("nan")
        print(f"{side:>8}: {tok_s:8.0f} tok/s  MFU {100 * mfu:5.2f}%")
    print(f"ratio ours / baseline: {median['ours'] / median['baseline']:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
