"""Memory estimate for a LoRA/QLoRA run before it starts, and recommended settings.

:func:`estimate_memory` is a pure function of the architecture (:class:`~.catalog.Arch`)
and the run settings. It adds up what actually lives in memory at the peak of a
training step, which is the start of the first backward pass:

- **weights**: the decoder's linear layers in their storage format (4-bit NF4/FP4
  with one absmax per 64-weight block, itself 8-bit with double quantization; int8
  with one fp32 scale per output row; or bf16/fp16/fp32). Embeddings, an untied LM
  head, norms and biases are never quantized, and ``prepare_model_for_kbit_training``
  upcasts them to fp32 for k-bit training.
- **LoRA**: adapter weights (fp32, as peft keeps them; DoRA adds one magnitude per
  output feature; LoRA on the embeddings and LM head adds their A and B), their
  gradients and the optimizer states, counted per tensor as each optimizer keeps them
  (:func:`optimizer_state_bytes`): AdamW and paged AdamW 32-bit two fp32 moments;
  bitsandbytes' 8-bit AdamW (paged or not) two uint8 moments with an fp32 absmax per
  256-value block and two 256-entry quantization maps, except for tensors under 4096
  values, which it keeps in 32 bits; SGD with momentum one fp32 buffer.
- **activations** saved for backward, per token per layer. The terms are the tensors
  autograd keeps for a Llama-style layer whose base weights are frozen (measured with
  ``torch.autograd.graph.saved_tensors_hooks`` on the bundled model): norm inputs,
  rotated q/k and v for SDPA (flash kernels: no seq x seq scores), the three MLP
  intermediates, plus the inputs LoRA needs - its own dropout output and mask per
  adapted module when ``lora_dropout`` > 0. Gradient checkpointing keeps only each
  layer's input and recomputes one layer at a time.
- **logits**: the LM head's output over the vocabulary and the cross entropy's copies
  (log-probabilities saved for backward, their gradient, the logits' gradient), all
  fp32: ``tokens x vocab x 4 bytes x 3``. This dominates for 150k-256k vocabularies.
  The engine only projects positions that are trained, so this is an upper bound.
- **overhead**: on CPU, the resident size of Python + torch + transformers + peft +
  bitsandbytes (measured by ``bench/memory_calibration.py``), the heap's retention of
  freed step memory (``CPU_HEAP_FACTOR``) and bitsandbytes' extra CPU copies of k-bit
  layer outputs; on CUDA, the CUDA context and the caching
  allocator's fragmentation.
- **checkpoint** (CPU only): safetensors checkpoint pages that loading maps and reads.

What is compared with the estimate is the process's own peak resident set (``VmHWM``,
see ``training.engine.train.process.memory_mb``), never ``ru_maxrss``: exec copies the spawning
process's peak into that, so a training process started by a pytest session or by a
script that had just converted a model "peaked" at its parent's 2+ GB.

bf16 autocast on CPU (``training.engine.train.speed``; ``autocast: auto`` turns it on for
4-bit and unquantized runs on CPUs with native bf16, which the caller says with
``cpu_bf16``): an unquantized model's linear weights are stored again in bf16 while the
fp32 checkpoint pages they came from stay mapped, so their bf16 copy is added to
``weights``; 4-bit layers compute in bf16, so their extra output copy on CPU is bf16.
The activation terms are the fp32 forward's; see README, "Memory estimates".

All sizes are MiB (2**20 bytes), named "MB" as the rest of the lab does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from training.engine.config import uses_bf16_autocast
from training.engine.models.arch import DTYPE_BYTES, Arch, param_count, quantizable_param_count

MB = 2**20

# bitsandbytes 4-bit: one absmax per 64 weights; double quantization stores those
# absmax values as int8 with one fp32 absmax (and offset) per 256 of them.
BNB_4BIT_BLOCK = 64
BNB_NESTED_BLOCK = 256
# Resident set of a process that has imported torch, transformers, peft, bitsandbytes
# and the engine, before any model is loaded (bench/memory_calibration.py, 2-core
# x86-64 Linux, torch 2.13 CPU). It barely depends on the model.
CPU_RUNTIME_MB = 400.0
# On CPU, resident bytes per byte of live activations and logits during a step. glibc's
# heap keeps much of what a step frees (forward temporaries such as un-rotated q/k or
# the attention output before its reshape; backward's gradient buffers) instead of
# returning it to the OS. Probe: RSS grows ~1.5x the autograd-saved bytes in forward;
# fitted to 1.45 on the unquantized bundled model (bench/memory_calibration.py).
CPU_HEAP_FACTOR = 1.45
# bitsandbytes' CPU path for 4-bit and 8-bit layers keeps one more copy of each linear
# output than an unquantized layer, in its compute dtype, and the heap keeps it:
# tokens x (sum of out_features) x compute bytes per layer (4 in fp32; 2 under bf16
# autocast, where 4-bit layers compute in bf16). Re-measured 2026-12-01 on the fused
# LoRA forward (training.engine.train.speed), which adds the LoRA branch onto the base output
# in one addmm: the k-bit minus unquantized gap at 512 tokens a step was one copy, not
# the two that peft's separate scale-and-add used to leave.
KBIT_CPU_OUTPUT_COPIES = 1
# CUDA context (kernels, cuBLAS/cuDNN handles) that torch's allocator does not report.
CUDA_CONTEXT_MB = 600.0
# The caching allocator rounds and splits blocks; a tenth of the dynamic memory is
# the usual slack between reserved and allocated at the peak.
CUDA_FRAGMENTATION = 0.10
# fp32 vocabulary-wide tensors alive at the start of backward: saved log-probs, the
# gradient of the log-probs (nll backward) and the gradient of the logits.
LOSS_LOGIT_COPIES = 3
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj")
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit", "paged_adamw32bit", "sgd")
# bitsandbytes' 8-bit optimizers: tensors below this many values keep 32-bit states;
# the others one fp32 absmax per block of this many values, and a 256-entry map.
BNB_MIN_8BIT_SIZE = 4096
BNB_STATE_BLOCK = 256
BNB_QMAP_ENTRIES = 256


@dataclass(frozen=True)
class MemorySettings:
    """The run settings that move memory; the same names as :class:`~.config.RunConfig`."""

    quantization: str = "4bit"  # "4bit", "8bit" or "none"
    quant_type: str = "nf4"  # "nf4" or "fp4": same size
    double_quant: bool = True
    compute_dtype: str = "auto"  # "auto": bfloat16 on CUDA, float32 on CPU
    lora_r: int = 8
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] | list[str] = "all-linear"
    use_dora: bool = False
    lora_embeddings: bool = False
    batch_size: int = 4
    max_seq_len: int = 512
    gradient_checkpointing: bool = False
    optimizer: str = "adamw"  # one of OPTIMIZERS
    autocast: str = "auto"  # the precision, as RunConfig: "auto", "bfloat16", "float16", "float32"

    @classmethod
    def from_config(cls, config: Any) -> MemorySettings:
        """From a RunConfig (or anything with these attributes); missing ones keep defaults."""
        values = {f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)}
        if isinstance(values.get("target_modules"), list):
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a training step, by component, in MB."""

    device: str
    weights_mb: float  # linear layers as stored (absmax / scales; a bf16 copy under CPU autocast)
    unquantized_mb: float  # embeddings, untied LM head, norms, biases
    lora_mb: float  # adapter weights
    gradients_mb: float  # adapter gradients
    optimizer_mb: float  # optimizer states
    activations_mb: float
    logits_mb: float  # LM head output and cross-entropy copies
    overhead_mb: float  # runtime baseline (CPU) or CUDA context + fragmentation
    checkpoint_mb: float  # CPU only: mapped checkpoint pages not already counted
    lora_params: int
    params: int

    @property
    def total_mb(self) -> float:
        return (
            self.weights_mb
            + self.unquantized_mb
            + self.lora_mb
            + self.gradients_mb
            + self.optimizer_mb
            + self.activations_mb
            + self.logits_mb
            + self.overhead_mb
            + self.checkpoint_mb
        )

    def breakdown(self) -> dict[str, float]:
        """Component name -> MB (rounded), with "total"; what the run form shows."""
        parts = {
            k: round(v, 1) for k, v in asdict(self).items() if k.endswith("_mb") and v is not None
        }
        parts["total_mb"] = round(self.total_mb, 1)
        return parts


def resolve_dtype(
    compute_dtype: str, device: str, autocast: str = "auto", gpu_bf16: bool = True
) -> str:
    """The dtype the model computes in (RunConfig.resolved_compute_dtype's rule)."""
    if compute_dtype != "auto":
        return compute_dtype
    if device != "cuda" or autocast == "float32":
        return "float32"
    if autocast == "float16":
        return "float16"
    return "bfloat16" if gpu_bf16 else "float32"


def target_module_names(arch: Arch, target_modules: Any) -> list[str]:
    """The decoder linear layers a LoRA target setting adapts (per layer)."""
    available = list(arch.linear_shapes())
    if target_modules == "all-linear":
        return available
    if target_modules == "attention":
        return [n for n in available if n in ATTENTION]
    return [n for n in available if n in set(target_modules)]


def lora_param_count(
    arch: Arch,
    lora_r: int,
    target_modules: Any,
    use_dora: bool = False,
    lora_embeddings: bool = False,
) -> int:
    """Adapter parameters: ``r x (in + out)`` per adapted matrix per layer, and more."""
    return sum(lora_tensor_sizes(arch, lora_r, target_modules, use_dora, lora_embeddings))


def lora_tensor_sizes(
    arch: Arch,
    lora_r: int,
    target_modules: Any,
    use_dora: bool = False,
    lora_embeddings: bool = False,
) -> list[int]:
    """The number of values of each trainable tensor peft creates (what optimizers see):
    A (r x in) and B (out x r) per adapted matrix per layer, DoRA's magnitude (out), and
    with ``lora_embeddings`` the embedding's (r x vocab, hidden x r) and LM head's pairs."""
    shapes = arch.linear_shapes()
    per_layer: list[int] = []
    for name in target_module_names(arch, target_modules):
        fan_in, fan_out = shapes[name]
        per_layer += [lora_r * fan_in, fan_out * lora_r] + ([fan_out] if use_dora else [])
    sizes = per_layer * arch.num_hidden_layers
    if lora_embeddings:
        h, v = arch.hidden_size, arch.vocab_size
        sizes += [lora_r * v, h * lora_r]  # embed_tokens (peft's Embedding has no DoRA bias)
        sizes += [lora_r * h, v * lora_r] + ([v] if use_dora else [])  # lm_head
    return sizes


def optimizer_state_bytes(optimizer: str, sizes: list[int]) -> float:
    """Bytes of optimizer state for trainable tensors of ``sizes`` values (see the
    module docstring; checked against real optimizers in tests/engine/test_settings.py)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    total = 0.0
    for n in sizes:
        if optimizer == "sgd":
            total += 4 * n
        elif optimizer == "adamw":
            total += 8 * n + 4  # two moments and torch's step counter
        elif optimizer == "paged_adamw32bit" or n < BNB_MIN_8BIT_SIZE:
            total += 8 * n
        else:
            blocks = math.ceil(n / BNB_STATE_BLOCK)
            total += 2 * n + 2 * blocks * 4 + 2 * BNB_QMAP_ENTRIES * 4
    return total


def weight_bytes(arch: Arch, quantization: str, quant_type: str, double_quant: bool, dtype: str):
    """(quantized linear bytes, unquantized bytes) for one storage choice.

    ``quant_type`` is accepted for completeness: NF4 and FP4 are both 4 bits a weight.
    """
    del quant_type
    linear = quantizable_param_count(arch)
    rest = param_count(arch) - linear
    if quantization == "4bit":
        blocks = linear / BNB_4BIT_BLOCK
        absmax = blocks * 1 + blocks / BNB_NESTED_BLOCK * 8 if double_quant else blocks * 4
        return linear * 0.5 + absmax, rest * 4.0
    if quantization == "8bit":
        out_rows = arch.num_hidden_layers * sum(o for _, o in arch.linear_shapes().values())
        return linear * 1.0 + out_rows * 4.0, rest * 4.0
    if quantization == "none":
        return linear * DTYPE_BYTES[dtype], rest * DTYPE_BYTES[dtype]
    raise ValueError(f"unknown quantization {quantization!r}")


def activation_elements_per_token(arch: Arch, settings: MemorySettings) -> tuple[float, float]:
    """(elements one layer saves per token, elements with gradient checkpointing per layer)."""
    h, i, q, kv = arch.hidden_size, arch.intermediate_size, arch.q_dim, arch.kv_dim
    shapes = arch.linear_shapes()
    targets = target_module_names(arch, settings.target_modules)
    # Norm inputs, rotated q and k plus v for attention, gate/up outputs and SiLU output.
    base = arch.norms_per_layer * h + q + 2 * kv + 3 * i
    lora = settings.lora_r * len(targets)  # lora_A outputs
    if settings.use_dora:
        # DoRA rescales the base and LoRA outputs by magnitude / norm: both are kept
        # for the magnitude's gradient (peft's own forward, not the fused one).
        lora += sum(2 * shapes[n][1] for n in targets)
    if settings.lora_dropout > 0:
        # Each adapter gets its own dropout output and mask; one residual-width extra
        # was observed on top (the attention input stays referenced).
        lora += sum(2 * shapes[n][0] for n in targets) + h
    else:
        # The adapters share their layer's input, saved once per distinct input.
        inputs = {
            "attn_in": h
            if any(n in targets for n in ("q_proj", "k_proj", "v_proj", "qkv_proj"))
            else 0,
            "o_in": q if "o_proj" in targets else 0,
            "mlp_in": h
            if any(n in targets for n in ("gate_proj", "up_proj", "gate_up_proj"))
            else 0,
            "down_in": i if "down_proj" in targets else 0,
        }
        lora += sum(inputs.values())
    return base + lora, h


def estimate_memory(
    arch: Arch,
    settings: MemorySettings | Any,
    device: str = "cpu",
    checkpoint_dtype: str = "bfloat16",
    cpu_bf16: bool = False,
    gpu_bf16: bool = True,
) -> MemoryEstimate:
    """Peak memory of one training step of a LoRA/QLoRA run (see the module docstring).

    ``settings`` is a :class:`MemorySettings` or a RunConfig. ``checkpoint_dtype`` is
    the dtype the safetensors weights are stored in; it matters on CPU only, where the
    loader maps the file and its pages count in the process's resident set.
    ``cpu_bf16``: the CPU runs bf16 natively, so ``autocast: auto`` turns bf16 on there
    (``training.engine.train.speed.cpu_has_fast_bf16``). ``gpu_bf16``: the CUDA GPU
    has bf16 (capability 8.0+), so "auto" computes in bf16 there. On Apple MPS the
    memory is shared with the CPU: the CPU runtime counts, with the GPU's slack.
    """
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', not {device!r}")
    if not isinstance(settings, MemorySettings):
        settings = MemorySettings.from_config(settings)
    dtype = resolve_dtype(settings.compute_dtype, device, settings.autocast, gpu_bf16)
    quantized, rest = weight_bytes(
        arch, settings.quantization, settings.quant_type, settings.double_quant, dtype
    )
    # Only CPU autocast is modelled: on CUDA, bf16 comes through compute_dtype.
    bf16_autocast = device == "cpu" and uses_bf16_autocast(
        settings.autocast, settings.quantization, dtype, device, cpu_bf16
    )
    if settings.quantization == "none" and bf16_autocast:
        quantized += quantizable_param_count(arch) * DTYPE_BYTES["bfloat16"]
    sizes = lora_tensor_sizes(
        arch,
        settings.lora_r,
        settings.target_modules,
        settings.use_dora,
        settings.lora_embeddings,
    )
    n_lora = sum(sizes)
    state_bytes = optimizer_state_bytes(settings.optimizer, sizes)

    tokens = settings.batch_size * settings.max_seq_len
    # k-bit training keeps the residual stream in fp32 (embeddings and norms upcast).
    act_bytes = 4 if settings.quantization != "none" else DTYPE_BYTES[dtype]
    per_layer, checkpointed = activation_elements_per_token(arch, settings)
    if settings.gradient_checkpointing:
        # Every layer's input, plus the one layer being recomputed in backward.
        elements = arch.num_hidden_layers * checkpointed + per_layer
    else:
        elements = arch.num_hidden_layers * per_layer
    activations = tokens * elements * act_bytes + tokens * arch.hidden_size * act_bytes * 2
    if settings.lora_embeddings:
        activations += tokens * 2 * settings.lora_r * 4  # the embedding's and head's A outputs
    logits = tokens * arch.vocab_size * 4 * LOSS_LOGIT_COPIES
    if DTYPE_BYTES[dtype] != 4:
        logits += tokens * arch.vocab_size * DTYPE_BYTES[dtype]  # the LM head's own output

    checkpoint = 0.0
    if device == "cpu":
        overhead = CPU_RUNTIME_MB * MB + (CPU_HEAP_FACTOR - 1) * (activations + logits)
        if settings.quantization != "none":
            out_features = sum(o for _, o in arch.linear_shapes().values())
            compute_bytes = DTYPE_BYTES["bfloat16"] if bf16_autocast else 4
            copies = KBIT_CPU_OUTPUT_COPIES * tokens * arch.num_hidden_layers * out_features
            overhead += copies * compute_bytes
        checkpoint = _mapped_checkpoint_bytes(arch, settings.quantization, dtype, checkpoint_dtype)
    elif device == "mps":
        overhead = CPU_RUNTIME_MB * MB + CUDA_FRAGMENTATION * (activations + logits)
    else:
        overhead = CUDA_CONTEXT_MB * MB + CUDA_FRAGMENTATION * (activations + logits)

    return MemoryEstimate(
        device=device,
        weights_mb=quantized / MB,
        unquantized_mb=rest / MB,
        lora_mb=n_lora * 4 / MB,
        gradients_mb=n_lora * 4 / MB,
        optimizer_mb=state_bytes / MB,
        activations_mb=activations / MB,
        logits_mb=logits / MB,
        overhead_mb=overhead / MB,
        checkpoint_mb=checkpoint / MB,
        lora_params=n_lora,
        params=param_count(arch),
    )


def _mapped_checkpoint_bytes(arch: Arch, quantization: str, dtype: str, ckpt_dtype: str) -> float:
    """Checkpoint pages resident on CPU that are not the model's own tensors.

    safetensors maps the file; every page the loader reads stays resident while the
    mapping lives. Tensors loaded without conversion (same dtype, not quantized) *are*
    those pages and are already counted as weights; everything else is read, converted
    into new memory, and its source pages stay counted too.
    """
    ckpt_bytes = DTYPE_BYTES[ckpt_dtype]
    linear = quantizable_param_count(arch)
    rest = param_count(arch) - linear
    linear_copied = quantization != "none" or dtype != ckpt_dtype
    rest_dtype = "float32" if quantization != "none" else dtype
    rest_copied = rest_dtype != ckpt_dtype
    return (linear * linear_copied + rest * rest_copied) * ckpt_bytes


# Keep this share of the device free: other processes, allocator spikes, estimate error
# (8-bit runs were measured 4-8% above their estimate). The run form's fit check and
# the recommendations both keep it.
SAFETY_MARGIN = 0.10


def usable_mb(device_memory_mb: float, margin: float = SAFETY_MARGIN) -> float:
    return device_memory_mb * (1 - margin)


def fits(
    estimate: MemoryEstimate, device_memory_mb: float, margin: float = SAFETY_MARGIN
) -> tuple[bool, float]:
    """(whether the run fits in the device less the safety margin, headroom in MB below
    that usable memory: negative by how much it does not fit)."""
    headroom = usable_mb(device_memory_mb, margin) - estimate.total_mb
    return headroom >= 0, headroom


# --- recommendations ------------------------------------------------------------------

PRESETS = ("8gb", "balanced", "quality")
EIGHT_GB_MB = 8 * 1024
TARGET_EFFECTIVE_BATCH = 16


def recommend(
    arch: Arch,
    dataset_rows: int,
    device_memory_mb: float,
    preset: str = "balanced",
    device: str = "cuda",
    context_length: int | None = None,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """RunConfig field values for this model, dataset and device, with the reasons.

    Presets: ``8gb`` plans for an 8 GB GPU (or less memory when the device has less):
    4-bit NF4, rank 8, sequences of 512; ``balanced`` uses the device's memory with
    rank 16 and 1024 tokens; ``quality`` prefers less quantization, rank 32 and 2048
    tokens. The largest micro-batch that fits (with a safety margin) is chosen, and
    gradient accumulation makes up an effective batch of 16. When nothing fits, the
    shortest sequence is kept and a reason says so.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    budget = min(device_memory_mb, EIGHT_GB_MB) if preset == "8gb" else device_memory_mb
    usable = usable_mb(budget)
    # bitsandbytes' 8-bit AdamW: a quarter of AdamW's state, for the 8 GB preset (and
    # anywhere the 8-bit optimizer runs when memory is tight); never on Apple MPS.
    optimizer = "adamw8bit" if preset == "8gb" and device in ("cuda", "cpu") else "adamw"
    reasons: list[tuple[str, str]] = []
    params = param_count(arch)

    rank = {"8gb": 8, "balanced": 16, "quality": 32}[preset]
    want_len = {"8gb": 512, "balanced": 1024, "quality": 2048}[preset]
    if context_length:
        want_len = min(want_len, context_length)
    quant_order = ["none", "8bit", "4bit"] if preset == "quality" else ["4bit"]
    lengths = [n for n in (want_len, 512, 256, 128) if n <= want_len]
    lengths = list(dict.fromkeys(lengths))

    chosen: tuple[str, int, bool, int, MemoryEstimate] | None = None
    for quantization in quant_order:
        for max_len in lengths:
            for checkpointing in (False, True):
                for batch in (16, 8, 4, 2, 1):
                    settings = MemorySettings(
                        quantization=quantization,
                        lora_r=rank,
                        batch_size=batch,
                        max_seq_len=max_len,
                        gradient_checkpointing=checkpointing,
                        optimizer=optimizer,
                    )
                    est = estimate_memory(arch, settings, device=device)
                    if est.total_mb <= usable:
                        chosen = (quantization, max_len, checkpointing, batch, est)
                        break
                if chosen:
                    break
            if chosen:
                break
        if chosen:
            break

    fitted = chosen is not None
    if chosen is None:
        settings = MemorySettings(
            quantization="4bit", lora_r=rank, batch_size=1, max_seq_len=lengths[-1],
            gradient_checkpointing=True, optimizer=optimizer,
        )  # fmt: skip
        chosen = ("4bit", lengths[-1], True, 1, estimate_memory(arch, settings, device=device))
    quantization, max_len, checkpointing, batch, est = chosen

    effective = max(1, min(TARGET_EFFECTIVE_BATCH, dataset_rows // 20 or 1))
    grad_accum = max(1, math.ceil(effective / batch))
    learning_rate = 1e-3 if params < 200e6 else 5e-4 if params < 1e9 else 2e-4
    if preset == "quality":
        learning_rate /= 2
    epochs = 3 if dataset_rows < 1_000 else 2 if dataset_rows < 10_000 else 1

    values: dict[str, Any] = {
        "quantization": quantization,
        "quant_type": "nf4",
        "double_quant": True,
        "compute_dtype": "auto",
        "lora_r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "learning_rate": learning_rate,
        "epochs": epochs,
        "batch_size": batch,
        "grad_accum": grad_accum,
        "max_seq_len": max_len,
        "gradient_checkpointing": checkpointing,
        "optimizer": optimizer,
        "warmup_ratio": 0.03,
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "lr_scheduler": "cosine",
        "max_grad_norm": 1.0,
        "autocast": "auto",
        "train_on_prompt": False,
        "use_rslora": False,
        "use_dora": False,
        "lora_embeddings": False,
    }
    target = "an 8 GB GPU" if preset == "8gb" else f"{budget / 1024:.0f} GB"
    if quantization == "4bit":
        why = "NF4 with double quantization: the smallest weights at near-bf16 quality"
    elif quantization == "8bit":
        why = "full precision does not fit; int8 keeps quality closer than 4-bit"
    else:
        why = "the unquantized model fits, so no quantization error"
    reasons.append(("quantization", f"{why} (estimated peak {est.total_mb:,.0f} MB of {target})"))
    reasons.append(
        ("lora_r", f"rank {rank} on all linear layers; alpha = 2 x rank keeps updates scaled")
    )
    reasons.append(
        (
            "learning_rate",
            f"{learning_rate:g}: smaller models tolerate (and need) larger LoRA steps",
        )
    )
    reasons.append(
        ("epochs", f"{epochs} pass(es) over {dataset_rows:,} rows: fewer rows need more passes")
    )
    reasons.append(
        (
            "batch_size",
            f"micro-batch {batch} x accumulation {grad_accum} = effective {batch * grad_accum}"
            f"; the largest micro-batch that leaves {SAFETY_MARGIN:.0%} headroom",
        )
    )
    if max_len < want_len:
        reasons.append(("max_seq_len", f"cut to {max_len} tokens to fit memory"))
    else:
        reasons.append(("max_seq_len", f"{max_len} tokens: the {preset} preset's length"))
    if checkpointing:
        reasons.append(
            ("gradient_checkpointing", "on: recomputing activations is the price of fitting")
        )
    if optimizer == "adamw8bit":
        reasons.append(
            (
                "optimizer",
                f"8-bit AdamW: {est.optimizer_mb:,.1f} MB of optimizer state, a quarter of "
                "AdamW's, for an 8 GB GPU",
            )
        )
    else:
        reasons.append(("optimizer", "AdamW: the LoRA states are small at this size"))
    reasons.append(
        ("autocast", "auto: bf16 where the device has it natively, else fp32 (no loss scaling)")
    )
    reasons.append(("warmup_ratio", "3% warmup with a cosine decay: Adam's first steps stay small"))
    if not fitted:
        reasons.append(
            ("quantization", f"even the smallest setting needs about {est.total_mb:,.0f} MB; "
             f"it will not fit in {budget:,.0f} MB")
        )  # fmt: skip
    return values, reasons
