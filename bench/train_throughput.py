"""Training throughput: our engine against a plain transformers Trainer + peft run.

Both train the same model with the same LoRA, optimizer (torch AdamW), learning-rate
schedule, clipping, seed and the very same batches: the script tokenizes the data
once with the engine's tokenizer code and feeds the Trainer the engine's batch order
(``train_sampling_strategy="sequential"``), padded by ``DataCollatorForSeq2Seq``.
Runs alternate (ours, baseline, ours, baseline, ...) and each is a fresh subprocess,
so peak RSS is per run and background load hits both sides alike.

    .venv/bin/python bench/train_throughput.py [--modes none,4bit] [--steps 6] [--rounds 2]
        [--autocast auto|bfloat16|float32]   # ours only; the baseline is always fp32

Printed per run: real (non-pad) tokens/s over the training loop (model loading
excluded), peak RSS of the process, final training loss (mean of the last 3 steps;
each step's loss is the mean over its trained tokens for both sides, on the same
batches), an eval loss computed identically for both (fresh model + saved adapter,
one held-out example at a time, mean over trained tokens), and MFU.

MFU = useful FLOPs / time / peak. Useful FLOPs count real tokens only, PaLM-style
(Chowdhery et al. 2022, app. B): 2·N per token forward + 4·N backward (6·N, the usual
convention, although a frozen LoRA base skips its weight gradients, so ~4·N is
actually executed), with N the parameters of every matmul (blocks, LoRA, LM head;
not the embedding lookup), plus attention 12·layers·hidden·L² per example of
length L. The CPU peak is an estimate from /proc/cpuinfo: fp32 lanes per vector
(16 with avx512f, 8 with avx2, else 4) * 2 (FMA) * 2 FMA pipes per core * the
"cpu MHz" clock * the cores this process may use. Two 512-bit FMA pipes hold for
Zen 5 and Xeon Gold/Platinum; Zen 4 splits 512-bit ops in halves (real peak is
half). Override with --peak-gflops.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LAST_K = 3  # final training loss: mean of the last LAST_K steps
N_EVAL = 16

TOPICS = [
    "photosynthesis", "the water cycle", "compound interest", "binary search", "vaccines",
    "plate tectonics", "supply and demand", "the French Revolution", "black holes",
    "recursion", "climate change", "the immune system", "neural networks", "inflation",
    "the printing press", "volcanoes", "electric cars", "sleep", "bread baking", "chess",
    "public transport", "solar panels", "coral reefs", "the stock market", "migration of birds",
]  # fmt: skip
INSTRUCTIONS = [
    "Explain {t} to a high-school student.",
    "Give a one-sentence definition of {t}.",
    "Write a short summary of the text below.",
    "List the main facts someone should know about {t}.",
    "What is the most common misconception about {t}?",
    "Write a detailed essay about {t}, with an introduction and a conclusion.",
    "Answer briefly: why does {t} matter?",
    "Describe, step by step, how {t} works.",
]
OPENERS = [
    "In short,", "Put simply,", "First,", "Moreover,", "However,", "For example,",
    "In practice,", "Historically,", "As a result,", "Finally,", "Note that", "Overall,",
]  # fmt: skip
CLAIMS = [
    "{t} depends on a few simple rules that interact in surprising ways",
    "people often underestimate how much {t} affects everyday life",
    "scientists have studied {t} for more than a century",
    "the key idea behind {t} is a balance between two competing forces",
    "understanding {t} helps to make better decisions",
    "{t} can be measured, modelled and predicted with reasonable accuracy",
    "small changes in the inputs of {t} can lead to large effects",
    "teachers usually introduce {t} with a concrete example",
    "the history of {t} is full of mistakes that taught us something",
    "{t} is easier to grasp once you draw a diagram of it",
    "experts still disagree about some details of {t}",
    "there are at least three different ways to think about {t}",
]


def write_dataset(path: Path, n: int, tokenizer: Any, seed: int = 0) -> None:
    """Alpaca rows whose answers are log-uniform in 20-400 tokens (short and long mixed)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(n):
            topic = rng.choice(TOPICS)
            instruction = rng.choice(INSTRUCTIONS).format(t=topic)
            context = ""
            if "text below" in instruction:
                context = " ".join(_sentence(rng, topic) for _ in range(rng.randint(2, 5)))
            target = round(math.exp(rng.uniform(math.log(20), math.log(400))))
            words: list[str] = []
            while len(tokenizer(" ".join(words))["input_ids"]) < target:
                words.extend(_sentence(rng, topic).split())
            output = " ".join(words)
            ids = tokenizer(output)["input_ids"][:target]
            output = tokenizer.decode(ids).strip()
            row = {"instruction": instruction, "input": context, "output": output}
            fh.write(json.dumps(row) + "\n")


def _sentence(rng: random.Random, topic: str) -> str:
    return f"{rng.choice(OPENERS)} {rng.choice(CLAIMS).format(t=topic)}."


# --- workers (one fresh process per run) ---------------------------------------------------


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from training.engine.data.records import DataSpec, read_dataset
    from training.engine.data.tokenize import tokenize_records
    from training.engine.train.loop import configure_threads, iterate_batches
    from training.engine.train.process import memory_mb

    configure_threads()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    examples, _ = tokenize_records(tokenizer, read_dataset(args.data, DataSpec()), args.max_seq_len)
    # The exact examples both sides train on, in the engine's (seeded) order.
    stream = iterate_batches(examples, args.batch_size, args.seed)
    used = [e for _ in range(args.steps) for e in next(stream)[1]]
    out = Path(args.out)
    result = ours(args, out) if args.worker == "ours" else baseline(args, used, out)
    # This process's own high-water mark: ru_maxrss would include the parent's peak.
    result["peak_rss_mb"] = memory_mb()[1]
    result["expected_tokens"] = sum(len(e["input_ids"]) for e in used)
    result["attn_l2"] = sum(len(e["input_ids"]) ** 2 for e in used)
    eval_rows = read_dataset(args.eval_data, DataSpec())
    eval_examples, _ = tokenize_records(tokenizer, eval_rows, args.max_seq_len)
    result["eval_loss"] = eval_loss(args, out / "adapter", eval_examples)
    result["n_params"] = matmul_params(args.model_dir, result["lora_params"])
    return result


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "quantization": args.mode,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "learning_rate": args.lr,
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum": 1,
        "max_seq_len": args.max_seq_len,
        "warmup_ratio": 0.1,
        "lr_scheduler": "cosine",
        "max_grad_norm": 1.0,
        "seed": args.seed,
    }


def ours(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from training.engine.config import RunConfig
    from training.engine.train.loop import TrainHooks, train

    metrics: list[Any] = []
    logs: list[str] = []
    config = RunConfig(
        model_dir=args.model_dir,
        dataset_path=args.data,
        output_dir=str(out),
        autocast=args.autocast,
        **run_settings(args),
    )
    train(config, TrainHooks(on_metrics=metrics.append, on_log=logs.append))
    trainable = next(x for x in logs if x.startswith("trainable params"))
    return {
        "tokens": sum(m.tokens for m in metrics),
        "train_s": metrics[-1].elapsed_s,
        "losses": [m.loss for m in metrics],
        "lora_params": int(trainable.split()[2].replace(",", "")),
    }


def baseline(args: argparse.Namespace, used: list[dict], out: Path) -> dict[str, Any]:
    """transformers Trainer + peft, as its docs show it; only the batch order is pinned."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    settings = run_settings(args)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    bnb = None
    if args.mode == "4bit":
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        )
    model = AutoModelForCausalLM.from_pretrained(
        args.model_dir, dtype=torch.float32, quantization_config=bnb, device_map={"": "cpu"}
    )
    if bnb is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(
        r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    data = [{**e, "attention_mask": [1] * len(e["input_ids"])} for e in used]
    times: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            times.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            times.append(time.perf_counter())

        def on_log(self, _a: Any, _s: Any, _c: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    training_args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(settings["warmup_ratio"] * args.steps),
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=True,
        remove_unused_columns=False,
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[Clock()],
    )
    trainer.train()
    model.save_pretrained(out / "adapter")
    trainable, _ = model.get_nb_trainable_parameters()
    return {
        "tokens": sum(len(e["input_ids"]) for e in used),
        "train_s": times[-1] - times[0],
        "losses": losses,
        "lora_params": trainable,
    }


def eval_loss(args: argparse.Namespace, adapter: Path, examples: list[dict]) -> float:
    """Same code for both sides: base model + saved adapter, mean over trained tokens."""
    import torch
    import torch.nn.functional as F
    from peft import PeftModel

    from training.engine.models import store

    base, _ = store.load_model_and_tokenizer(Path(args.model_dir), quantization=args.mode)
    model = PeftModel.from_pretrained(base, adapter).eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for e in examples:
            ids = torch.tensor([e["input_ids"]])
            targets = torch.tensor(e["labels"][1:])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
            total += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
            count += int((targets != -100).sum())
    return total / count


def matmul_params(model_dir: str, lora_params: int) -> int:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    d, ff, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    kv = c.num_key_value_heads * (d // c.num_attention_heads)
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * ff
    return layers * per_layer + d * c.vocab_size + lora_params


# --- driver --------------------------------------------------------------------------------


def cpu_peak_gflops() -> tuple[float, str]:
    text = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M).group(1))
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    cores = len(os.sched_getaffinity(0))
    peak = lanes * fma * 2 * mhz / 1000 * cores
    isa = "avx512f" if lanes == 16 else "avx2" if lanes == 8 else "sse"
    how = (
        f"{isa}: {lanes} fp32 lanes x {fma} (FMA) x 2 pipes x {mhz / 1000:.2f} GHz"
        f" x {cores} cores = {peak:.0f} GFLOP/s"
    )
    return peak, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="none,4bit", help="quantizations: none,4bit")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="ours/baseline pairs per mode")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--peak-gflops", type=float, default=0.0)
    parser.add_argument("--autocast", default="auto", help="ours: auto, bfloat16 or float32")
    parser.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--eval-data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)))
        return

    from transformers import AutoTokenizer

    from training.engine.config import RunConfig
    from training.engine.data.records import read_alpaca_jsonl, tokenize_rows
    from training.engine.models.store import import_bundled_model
    from training.engine.train.speed import resolve_autocast

    store_dir = Path(os.environ.get("SLMLAB_MODEL_STORE", ROOT / "data" / "models"))
    model_dir = import_bundled_model(store_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    work = Path(tempfile.mkdtemp(prefix="slmlab-throughput-"))
    data, eval_data = work / "train.jsonl", work / "eval.jsonl"
    write_dataset(data, args.rows, tokenizer, seed=1)
    write_dataset(eval_data, N_EVAL, tokenizer, seed=2)
    lengths = sorted(
        len(e["input_ids"])
        for e in tokenize_rows(tokenizer, read_alpaca_jsonl(data), args.max_seq_len)[0]
    )
    peak, how = cpu_peak_gflops()
    peak = args.peak_gflops or peak
    print(f"model {model_dir.name}; {args.rows} rows, tokens/example min {lengths[0]} "
          f"median {lengths[len(lengths) // 2]} mean {statistics.mean(lengths):.0f} "
          f"max {lengths[-1]}; batch {args.batch_size} x {args.steps} steps; "
          f"max_seq_len {args.max_seq_len}")  # fmt: skip
    print(f"CPU peak estimate: {how}" + (f" (overridden: {peak:.0f})" if args.peak_gflops else ""))
    probe = RunConfig("m", "d", "o", autocast=args.autocast, quantization="none")
    autocast = resolve_autocast(probe, "cpu") or "off (fp32)"
    print(f"ours: forward autocast {autocast}; baseline: fp32 (MFU is against the fp32 peak"
          " for both; native bf16 doubles the CPU's peak)")  # fmt: skip
    results: dict[tuple[str, str], list[dict]] = {}
    header = f"{'mode':6} {'run':9} {'real tok/s':>10} {'peak RSS MB':>11} {'final loss':>10} "
    header += f"{'eval loss':>9} {'MFU':>6} {'train s':>7}"
    print(header)
    for mode in args.modes.split(","):
        for _ in range(args.rounds):
            for side in ("ours", "baseline"):
                r = run_worker(args, side, mode, model_dir, data, eval_data, work)
                r["mfu"] = mfu(r, model_dir, peak)
                results.setdefault((mode, side), []).append(r)
                print(f"{mode:6} {side:9} {r['tok_s']:10.1f} {r['peak_rss_mb']:11.0f} "
                      f"{r['final_loss']:10.4f} {r['eval_loss']:9.4f} {100 * r['mfu']:5.1f}% "
                      f"{r['train_s']:7.1f}  step losses "
                      + " ".join(f"{x:.4f}" for x in r["losses"]), flush=True)  # fmt: skip
    print("\nsummary (ours / baseline; means over rounds)")
    print(f"{'mode':6} {'tok/s ratio':>11} {'peak RSS ratio':>14} {'final loss diff':>15} "
          f"{'eval loss diff':>14} {'MFU ours':>8} {'MFU base':>8}")  # fmt: skip
    for mode in args.modes.split(","):
        a, b = results[(mode, "ours")], results[(mode, "baseline")]

        def mean(rs: list[dict], key: str) -> float:
            return statistics.mean(r[key] for r in rs)

        speed = mean(a, "tok_s") / mean(b, "tok_s")
        rss = max(r["peak_rss_mb"] for r in a) / max(r["peak_rss_mb"] for r in b)
        loss = mean(a, "final_loss") / mean(b, "final_loss") - 1
        ev = mean(a, "eval_loss") / mean(b, "eval_loss") - 1
        print(f"{mode:6} {speed:10.2f}x {rss:13.2f}x {100 * loss:+14.2f}% {100 * ev:+13.2f}% "
              f"{100 * mean(a, 'mfu'):7.1f}% {100 * mean(b, 'mfu'):7.1f}%")  # fmt: skip


def run_worker(
    args: argparse.Namespace,
    side: str,
    mode: str,
    model_dir: Path,
    data: Path,
    eval_data: Path,
    work: Path,
) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"{side}-{mode}-", dir=work))
    command = [
        sys.executable, __file__, "--worker", side, "--mode", mode, "--data", str(data),
        "--eval-data", str(eval_data), "--out", str(out), "--model-dir", str(model_dir),
        "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--max-seq-len", str(args.max_seq_len), "--lr", str(args.lr), "--seed", str(args.seed),
        "--autocast", args.autocast,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{side} ({mode}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    r = json.loads(lines[-1][len("RESULT ") :])
    if r["tokens"] != r["expected_tokens"] or len(r["losses"]) != args.steps:
        sys.exit(f"{side} ({mode}) trained other data: {r}")
    r["tok_s"] = r["tokens"] / r["train_s"]
    r["final_loss"] = statistics.mean(r["losses"][-LAST_K:])
    return r


def mfu(r: dict[str, Any], model_dir: Path, peak_gflops: float) -> float:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    flops = (
        6 * r["n_params"] * r["tokens"] + 12 * c.num_hidden_layers * c.hidden_size * r["attn_l2"]
    )
    return flops / r["train_s"] / (peak_gflops * 1e9)


if __name__ == "__main__":
    main()
