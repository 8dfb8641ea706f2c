"""Training throughput: our engine against a plain transformers Trainer + peft run and
against TRL's SFTTrainer at its best settings for the device.

All sides train the same model with the same LoRA, optimizer (torch AdamW), learning-rate
schedule, clipping, seed and the very same examples in the same order: the script
tokenizes the data once with the engine's tokenizer code and feeds the Hugging Face
trainers the engine's example order (``train_sampling_strategy="sequential"``).

- ``baseline``: transformers ``Trainer`` + peft as its docs show it: fp32, batches
  right-padded by ``DataCollatorForSeq2Seq``.
- ``trl``: TRL ``SFTTrainer`` as Hugging Face documents efficient SFT: ``padding_free``
  (a step's examples flattened into one row, positions restarting per example),
  completion-only loss (prompt tokens masked through a ``completion_mask`` column),
  bf16 where the device computes it natively (CPU autocast on avx512_bf16/AMX; bf16
  weights on CUDA), no gradient checkpointing, TRL's own fused LM head; on CUDA
  flash-attention 2 and liger-kernel's layer kernels when installed.
- ``ours``: the engine's ``train`` with its defaults.

Runs alternate (ours, baseline, trl, ours, ...) and each is a fresh subprocess, so the
peak memory is per run and background load hits every side alike.

    .venv/bin/python bench/train_throughput.py [--modes none,4bit] [--steps 6] [--rounds 2]
        [--sides ours,baseline,trl] [--autocast auto|bfloat16|float32]  # ours only
        [--device cpu|cuda] [--model auto|bundled|random-1b|random-tiny] [--tiny]

``--device cuda`` puts every side on the GPU, trains a random-initialised Llama of
about 1B parameters built offline from a config with the bundled SmolLM2 tokenizer
(``--model random-1b``, no download), reports CUDA peak allocated memory instead of RSS
and MFU against the GPU's dense bf16 peak (table in training/engine/train/peak.py;
``--peak-tflops`` overrides it). ``--tiny`` (``--model random-tiny``) is the same
construction at a few MB, for tests. ``bench/gpu_check.sh`` is the prepared GPU run.

Printed per run: real (non-pad) tokens/s over the training loop (model loading
excluded; on CUDA the first step, which pays for kernel start-up, is left out), peak
memory (the process's RSS high-water mark on CPU, ``torch.cuda.max_memory_allocated``
on CUDA), final training loss (mean of the last 3 steps; each step's loss is the mean
over its trained tokens on every side, on the same examples), an eval loss computed
identically for all (fresh model + saved adapter, one held-out example at a time,
mean over trained tokens), and MFU.

MFU = useful FLOPs / time / peak. Useful FLOPs count real tokens only, PaLM-style
(Chowdhery et al. 2022, app. B): 2·N per token forward + 4·N backward (6·N, the usual
convention, although a frozen LoRA base skips its weight gradients, so ~4·N is
actually executed), with N the parameters of every matmul (blocks, LoRA, LM head;
not the embedding lookup), plus attention 12·layers·hidden·L² per example of
length L. On a CPU, MFU is given against both peaks (training/engine/train/peak.py,
from /proc/cpuinfo): fp32 = lanes per vector (16 with avx512f, 8 with avx2, else 4)
x 2 (FMA) x 2 FMA pipes x the "cpu MHz" clock x the cores this process may use; bf16
= twice that with avx512_bf16, 1024 FLOPs per cycle and core with AMX, else the fp32
peak. Two 512-bit FMA pipes hold for Zen 5 and Xeon Gold/Platinum; Zen 4 splits
512-bit ops in halves (real peak is half). Override with --peak-gflops (fp32) and
--peak-bf16-gflops.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
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

SIDES = ("ours", "baseline", "trl")
MODELS = ("auto", "bundled", "random-1b", "random-tiny")
# Random-initialised Llamas built from a config (no download): about 1.07B parameters
# (Llama-3.2-1B's shape with SmolLM2's 49k vocabulary, tied embeddings), and a tiny one.
RANDOM_LLAMAS: dict[str, dict[str, int]] = {
    "random-1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    },
    "random-tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}

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


# --- models built from a config ------------------------------------------------------------


def build_random_llama(dest: Path, tokenizer_dir: Path, size: str, seed: int = 0) -> Path:
    """A random-initialised Llama of ``size`` (see RANDOM_LLAMAS) with the tokenizer of
    ``tokenizer_dir``, saved as safetensors in ``dest``; built offline, reused when there."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (dest / "model.safetensors").exists() or (dest / "model.safetensors.index.json").exists():
        return dest
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **RANDOM_LLAMAS[size],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if size != "random-tiny":
        model = model.to(torch.bfloat16)  # half the disk; every side loads it in its dtype
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(dest)
    return dest


def resolve_model(args: argparse.Namespace) -> str:
    if args.tiny:
        return "random-tiny"
    if args.model == "auto":
        return "random-1b" if args.device == "cuda" else "bundled"
    return args.model


# --- memory and peaks ----------------------------------------------------------------------


def peak_memory_function(device: str) -> tuple[str, Any]:
    """(label, function returning this process's peak MB) for ``device``: the RSS
    high-water mark on CPU, CUDA peak allocated memory on a GPU."""
    if device == "cuda":

        def cuda_peak() -> float:
            import torch

            return torch.cuda.max_memory_allocated() / 2**20

        return "CUDA peak alloc MB", cuda_peak

    def rss_peak() -> float:
        from training.engine.train.process import memory_mb

        return memory_mb()[1]

    return "peak RSS MB", rss_peak


def peaks(args: argparse.Namespace, gpu_name: str = "") -> dict[str, tuple[float, str]]:
    """The peaks MFU is given against: {"fp32": ..., "bf16": ...} on a CPU (GFLOP/s, how),
    {"bf16": ...} on a GPU; a peak that cannot be known is left out."""
    from training.engine.train.peak import cpu_flags, cpu_peak_flops, gpu_peak_flops

    if args.device == "cuda":
        if args.peak_tflops:
            return {"bf16": (args.peak_tflops * 1000, f"{gpu_name}: --peak-tflops")}
        flops = gpu_peak_flops(gpu_name, bf16=True)
        if flops is None:
            return {}
        return {"bf16": (flops / 1e9, f"{gpu_name}: dense bf16 datasheet figure")}
    found: dict[str, tuple[float, str]] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = cpu_flags(text)
    isa = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse"
    bf16_isa = "AMX" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else ""
    cores = len(os.sched_getaffinity(0))
    if text:
        fp32 = cpu_peak_flops(text) / 1e9
        bf16 = cpu_peak_flops(text, bf16=True) / 1e9
        found["fp32"] = (fp32, f"{isa}, {cores} cores")
        found["bf16"] = (bf16, f"{bf16_isa or 'no native bf16: the fp32 peak'}, {cores} cores")
    if args.peak_gflops:
        found["fp32"] = (args.peak_gflops, "--peak-gflops")
    if args.peak_bf16_gflops:
        found["bf16"] = (args.peak_bf16_gflops, "--peak-bf16-gflops")
    return found


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def bf16_native(device: str) -> bool:
    """Whether the device computes bf16 natively (what TRL's best settings use)."""
    if device == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    from training.engine.train.speed import cpu_has_fast_bf16

    return cpu_has_fast_bf16()


# --- workers (one fresh process per run) ---------------------------------------------------


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from training.engine.data.records import DataSpec, read_dataset
    from training.engine.data.tokenize import tokenize_records
    from training.engine.train.loop import configure_threads, iterate_batches
    from training.engine.train.process import reset_peak_memory

    configure_threads()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    examples, _ = tokenize_records(tokenizer, read_dataset(args.data, DataSpec()), args.max_seq_len)
    # The exact examples every side trains on, in the engine's (seeded) order.
    stream = iterate_batches(examples, args.batch_size, args.seed)
    batches = [next(stream)[1] for _ in range(args.steps)]
    used = [e for batch in batches for e in batch]
    out = Path(args.out)
    _, peak_mb = peak_memory_function(args.device)
    reset_peak_memory()  # this run's own peak (ours resets it again as it starts)
    sides = {"ours": ours, "baseline": baseline, "trl": trl}
    result = sides[args.worker](args, used, out)
    result["peak_mb"] = peak_mb()  # before the evaluation below
    result["step_tokens"] = [sum(len(e["input_ids"]) for e in b) for b in batches]
    result["expected_tokens"] = sum(result["step_tokens"])
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


def ours(args: argparse.Namespace, _used: list[dict], out: Path) -> dict[str, Any]:
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
        "step_times": [0.0] + [m.elapsed_s for m in metrics],
        "losses": [m.loss for m in metrics],
        "lora_params": int(trainable.split()[2].replace(",", "")),
        "log": [x for x in logs if x.startswith("precision")],
    }


def lora_config(args: argparse.Namespace) -> Any:
    from peft import LoraConfig

    settings = run_settings(args)
    return LoraConfig(
        r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def hf_model(args: argparse.Namespace, dtype: Any, compute_dtype: Any, **kwargs: Any) -> Any:
    """The model as the Hugging Face sides load it (4-bit NF4 in ``--mode 4bit``)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    bnb = None
    if args.mode == "4bit":
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return AutoModelForCausalLM.from_pretrained(
        args.model_dir,
        dtype=dtype,
        quantization_config=bnb,
        device_map={"": args.device},
        **kwargs,
    )


def hf_arguments(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """TrainingArguments both Hugging Face sides share: the run's schedule and order."""
    settings = run_settings(args)
    return {
        "output_dir": str(out / "trainer"),
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": 1,
        "max_steps": args.steps,
        "learning_rate": args.lr,
        "lr_scheduler_type": "cosine",
        "warmup_steps": math.ceil(settings["warmup_ratio"] * args.steps),
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "optim": "adamw_torch",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": args.seed,
        "use_cpu": args.device == "cpu",
        "train_sampling_strategy": "sequential",
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def clock_callback(times: list[float], losses: list[float]) -> Any:
    """A TrainerCallback that records each step's end time and logged loss."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            times.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            times.append(time.perf_counter())

        def on_log(self, _a: Any, _s: Any, _c: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return Clock()


def hf_train(trainer: Any, model: Any, used: list[dict], out: Path, times: list[float],
             losses: list[float]) -> dict[str, Any]:  # fmt: skip
    trainer.train()
    trainer.model.save_pretrained(out / "adapter")
    trainable, _ = trainer.model.get_nb_trainable_parameters()
    return {
        "tokens": sum(len(e["input_ids"]) for e in used),
        "step_times": [t - times[0] for t in times],
        "losses": losses,
        "lora_params": trainable,
    }


def baseline(args: argparse.Namespace, used: list[dict], out: Path) -> dict[str, Any]:
    """transformers Trainer + peft, as its docs show it; only the batch order is pinned."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = hf_model(args, torch.float32, torch.float32)
    if args.mode == "4bit":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, lora_config(args))
    data = [{**e, "attention_mask": [1] * len(e["input_ids"])} for e in used]
    times: list[float] = []
    losses: list[float] = []
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**hf_arguments(args, out), remove_unused_columns=False),
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[clock_callback(times, losses)],
    )
    return hf_train(trainer, model, used, out, times, losses)


def trl_settings(device: str) -> dict[str, Any]:
    """TRL's best settings for ``device``: what SFTConfig and the model load get."""
    import torch

    bf16 = bf16_native(device)
    settings: dict[str, Any] = {
        "bf16": bf16,
        # bf16 weights on a GPU, as TRL loads a bf16 checkpoint; fp32 + autocast on a CPU
        "dtype": torch.bfloat16 if device == "cuda" and bf16 else torch.float32,
        "attn_implementation": "sdpa",
        "use_liger_kernel": False,
    }
    if device == "cuda":
        if has_module("flash_attn") and bf16:
            settings["attn_implementation"] = "flash_attention_2"
        settings["use_liger_kernel"] = has_module("liger_kernel")
    return settings


def trl(args: argparse.Namespace, used: list[dict], out: Path) -> dict[str, Any]:
    """TRL SFTTrainer, padding-free, completion-only loss, bf16 where native."""
    import warnings

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    best = trl_settings(args.device)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    compute = torch.bfloat16 if best["bf16"] else torch.float32
    model = hf_model(args, best["dtype"], compute, attn_implementation=best["attn_implementation"])
    # Pre-tokenized prompt-completion rows: TRL builds the labels from completion_mask.
    rows = [
        {"input_ids": e["input_ids"], "completion_mask": [int(x != -100) for x in e["labels"]]}
        for e in used
    ]
    times: list[float] = []
    losses: list[float] = []
    warnings.simplefilter("ignore", FutureWarning)  # deprecations: use_liger_kernel and others
    config = SFTConfig(
        **hf_arguments(args, out),
        bf16=best["bf16"],
        padding_free=True,
        completion_only_loss=True,
        max_length=None,  # the engine's tokenizer code already cut them to max_seq_len
        gradient_checkpointing=False,
        use_liger_kernel=best["use_liger_kernel"],
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(args),
        callbacks=[clock_callback(times, losses)],
    )
    result = hf_train(trainer, model, used, out, times, losses)
    result["log"] = [
        f"trl: bf16 {best['bf16']}, attention {best['attn_implementation']}, "
        f"liger {best['use_liger_kernel']}"
    ]
    return result


def eval_loss(args: argparse.Namespace, adapter: Path, examples: list[dict]) -> float:
    """Same code for every side: base model + saved adapter, mean over trained tokens."""
    import torch
    import torch.nn.functional as F
    from peft import PeftModel

    from training.engine.models import store

    base, _ = store.load_model_and_tokenizer(
        Path(args.model_dir), quantization=args.mode, device=args.device
    )
    model = PeftModel.from_pretrained(base, adapter).eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for e in examples:
            ids = torch.tensor([e["input_ids"]], device=args.device)
            targets = torch.tensor(e["labels"][1:], device=args.device)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="none,4bit", help="quantizations: none,4bit")
    parser.add_argument("--sides", default=",".join(SIDES), help="of ours,baseline,trl")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", choices=MODELS, default="auto",
                        help="auto: the bundled model on cpu, random-1b on cuda")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="same as --model random-tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side per mode")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--peak-gflops", type=float, default=0.0, help="CPU fp32 peak")
    parser.add_argument("--peak-bf16-gflops", type=float, default=0.0, help="CPU bf16 peak")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="GPU bf16 peak")
    parser.add_argument("--autocast", default="auto", help="ours: auto, bfloat16 or float32")
    parser.add_argument("--work", help="folder for data, models and runs (default: a temp one)")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--eval-data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sides = args.sides.split(",")
    unknown = [s for s in sides if s not in SIDES]
    if unknown or not sides or len(set(sides)) != len(sides):
        parser.error(f"--sides: {args.sides!r}; choose distinct sides of {', '.join(SIDES)}")
    modes = args.modes.split(",")
    if any(m not in ("none", "4bit") for m in modes):
        parser.error(f"--modes: {args.modes!r}; choose of none,4bit")
    if args.steps < 2 or args.batch_size < 1 or args.rounds < 1:
        parser.error("--steps must be at least 2, --batch-size and --rounds at least 1")
    if args.tiny and args.model not in ("auto", "random-tiny"):
        parser.error(f"--tiny and --model {args.model} contradict each other")
    if "trl" in sides and not args.worker and not has_module("trl"):
        parser.error("the trl side needs TRL: .venv/bin/pip install -e '.[bench]' (or drop trl "
                     "from --sides)")  # fmt: skip
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)))
        return

    from transformers import AutoTokenizer

    from training.engine.config import RunConfig
    from training.engine.data.records import DataSpec, read_dataset
    from training.engine.data.tokenize import tokenize_records
    from training.engine.models.store import import_bundled_model
    from training.engine.train.speed import resolve_autocast

    gpu_name = ""
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: this machine has no CUDA device torch can use")
        gpu_name = torch.cuda.get_device_name(0)
    sides = args.sides.split(",")
    modes = args.modes.split(",")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="slmlab-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    store_dir = Path(os.environ.get("SLMLAB_MODEL_STORE", ROOT / "data" / "models"))
    bundled = import_bundled_model(store_dir)
    model = resolve_model(args)
    if model == "bundled":
        model_dir = bundled
    else:
        began = time.perf_counter()
        model_dir = build_random_llama(work / model, bundled, model, seed=args.seed)
        print(f"{model}: built from a config in {time.perf_counter() - began:.0f} s")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data, eval_data = work / "train.jsonl", work / "eval.jsonl"
    write_dataset(data, args.rows, tokenizer, seed=1)
    write_dataset(eval_data, N_EVAL, tokenizer, seed=2)
    examples, _ = tokenize_records(tokenizer, read_dataset(data, DataSpec()), args.max_seq_len)
    lengths = sorted(len(e["input_ids"]) for e in examples)
    print(f"model {model_dir.name} ({matmul_params(str(model_dir), 0) / 1e6:.0f}M matmul "
          f"params) on {gpu_name or 'cpu'}; {args.rows} rows, tokens/example min {lengths[0]} "
          f"median {lengths[len(lengths) // 2]} mean {statistics.mean(lengths):.0f} "
          f"max {lengths[-1]}; batch {args.batch_size} x {args.steps} steps; "
          f"max_seq_len {args.max_seq_len}")  # fmt: skip
    found = peaks(args, gpu_name)
    for kind, (gflops, how) in found.items():
        print(f"{kind} peak: {gflops:.0f} GFLOP/s ({how})")
    if args.device == "cpu":
        probe = RunConfig("m", "d", "o", autocast=args.autocast, quantization="none")
        ours_precision = resolve_autocast(probe, "cpu") or "off (fp32)"
        print(f"ours: forward autocast {ours_precision}; baseline: fp32")
    if "trl" in sides:
        best = trl_settings(args.device)
        print(f"trl: bf16 {best['bf16']}, weights {best['dtype']}, attention "
              f"{best['attn_implementation']}, liger layer kernels {best['use_liger_kernel']}, "
              "padding-free, completion-only loss")  # fmt: skip
    memory_label, _ = peak_memory_function(args.device)
    skip = 1 if args.device == "cuda" else 0
    results: dict[tuple[str, str], list[dict]] = {}
    mfu_heads = " ".join(f"{'MFU ' + k:>9}" for k in found)
    print(f"{'mode':6} {'run':9} {'real tok/s':>10} {memory_label:>18} {'final loss':>10} "
          f"{'eval loss':>9} {mfu_heads} {'train s':>7}")  # fmt: skip
    for mode in modes:
        for _ in range(args.rounds):
            for side in sides:
                r = run_worker(args, side, mode, model_dir, data, eval_data, work, skip)
                r["mfu"] = {k: mfu(r, model_dir, g) for k, (g, _) in found.items()}
                results.setdefault((mode, side), []).append(r)
                mfus = " ".join(f"{100 * r['mfu'][k]:8.1f}%" for k in found)
                print(f"{mode:6} {side:9} {r['tok_s']:10.1f} {r['peak_mb']:18.0f} "
                      f"{r['final_loss']:10.4f} {r['eval_loss']:9.4f} {mfus} "
                      f"{r['train_s']:7.1f}  step losses "
                      + " ".join(f"{x:.4f}" for x in r["losses"]), flush=True)  # fmt: skip
    print(summary(results, modes, sides, list(found)))


def summary(results: dict[tuple[str, str], list[dict]], modes: list[str], sides: list[str],
            peak_kinds: list[str]) -> str:  # fmt: skip
    """Ours against each other side (means over rounds), and every side's means."""

    def mean(rs: list[dict], key: str) -> float:
        return statistics.mean(r[key] for r in rs)

    lines = ["", "summary (means over rounds)"]
    mfu_heads = " ".join(f"{'MFU ' + k:>9}" for k in peak_kinds)
    lines.append(f"{'mode':6} {'run':9} {'real tok/s':>10} {'peak MB':>9} {'final loss':>10} "
                 f"{'eval loss':>9} {mfu_heads}")  # fmt: skip
    for mode in modes:
        for side in sides:
            rs = results[(mode, side)]
            mfus = " ".join(
                f"{100 * statistics.mean(r['mfu'][k] for r in rs):8.1f}%" for k in peak_kinds
            )
            lines.append(f"{mode:6} {side:9} {mean(rs, 'tok_s'):10.1f} "
                         f"{max(r['peak_mb'] for r in rs):9.0f} {mean(rs, 'final_loss'):10.4f} "
                         f"{mean(rs, 'eval_loss'):9.4f} {mfus}")  # fmt: skip
    if "ours" not in sides or len(sides) == 1:
        return "\n".join(lines)
    lines += ["", f"{'mode':6} {'ours vs':9} {'tok/s ratio':>11} {'peak mem ratio':>14} "
              f"{'final loss diff':>15} {'eval loss diff':>14}"]  # fmt: skip
    for mode in modes:
        a = results[(mode, "ours")]
        for other in (s for s in sides if s != "ours"):
            b = results[(mode, other)]
            speed = mean(a, "tok_s") / mean(b, "tok_s")
            memory = max(r["peak_mb"] for r in a) / max(r["peak_mb"] for r in b)
            loss = mean(a, "final_loss") / mean(b, "final_loss") - 1
            ev = mean(a, "eval_loss") / mean(b, "eval_loss") - 1
            lines.append(f"{mode:6} {other:9} {speed:10.2f}x {memory:13.2f}x "
                         f"{100 * loss:+14.2f}% {100 * ev:+13.2f}%")  # fmt: skip
    return "\n".join(lines)


def run_worker(
    args: argparse.Namespace,
    side: str,
    mode: str,
    model_dir: Path,
    data: Path,
    eval_data: Path,
    work: Path,
    skip_steps: int = 0,
) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"{side}-{mode}-", dir=work))
    command = [
        sys.executable, __file__, "--worker", side, "--mode", mode, "--data", str(data),
        "--eval-data", str(eval_data), "--out", str(out), "--model-dir", str(model_dir),
        "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--max-seq-len", str(args.max_seq_len), "--lr", str(args.lr), "--seed", str(args.seed),
        "--autocast", args.autocast, "--device", args.device,
    ]  # fmt: skip
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # every side on the CPU, even on a GPU machine
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{side} ({mode}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    r = json.loads(lines[-1][len("RESULT ") :])
    if r["tokens"] != r["expected_tokens"] or len(r["losses"]) != args.steps:
        sys.exit(f"{side} ({mode}) trained other data: {r}")
    return with_rates(r, skip_steps)


def with_rates(r: dict[str, Any], skip_steps: int = 0) -> dict[str, Any]:
    """tokens/s over the steps after the first ``skip_steps``, and the final loss."""
    times, step_tokens = r["step_times"], r["step_tokens"]
    r["train_s"] = times[-1] - times[skip_steps]
    r["timed_tokens"] = sum(step_tokens[skip_steps:])
    r["tok_s"] = r["timed_tokens"] / r["train_s"]
    r["final_loss"] = statistics.mean(r["losses"][-LAST_K:])
    return r


def mfu(r: dict[str, Any], model_dir: Path, peak_gflops: float) -> float:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    share = r["timed_tokens"] / r["tokens"]  # attention FLOPs of the timed steps, pro rata
    flops = (
        6 * r["n_params"] * r["timed_tokens"]
        + 12 * c.num_hidden_layers * c.hidden_size * r["attn_l2"] * share
    )
    return flops / r["train_s"] / (peak_gflops * 1e9)


if __name__ == "__main__":
    main()
