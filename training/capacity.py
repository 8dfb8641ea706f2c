"""Will this run fit? The engine's memory estimate against the lab's real workers."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import psutil

from projects.models import BaseModel
from training.engine.models.arch import read_model_facts
from training.engine.models.memory import MemoryEstimate, MemorySettings, estimate_memory, fits
from training.models import Worker

LABELS = {
    "weights_mb": "quantized weights",
    "unquantized_mb": "embeddings, norms, LM head",
    "lora_mb": "LoRA weights",
    "gradients_mb": "gradients",
    "optimizer_mb": "optimizer states",
    "activations_mb": "activations",
    "logits_mb": "logits and loss",
    "overhead_mb": "runtime overhead",
    "checkpoint_mb": "mapped checkpoint",
}


@dataclass(frozen=True)
class Device:
    """Where a run would train: the largest live worker's device."""

    kind: str  # "cpu" or "cuda"
    name: str
    memory_mb: float
    cpu_bf16: bool  # a CPU with native bf16 matmuls: runs take bf16 autocast there


@dataclass(frozen=True)
class Capacity:
    estimate: MemoryEstimate
    device: Device
    fits: bool
    headroom_mb: float

    @property
    def used_percent(self) -> int:
        return min(100, round(100 * self.estimate.total_mb / self.device.memory_mb))

    def rows(self) -> list[tuple[str, float]]:
        parts = self.estimate.breakdown()
        return [(LABELS[key], parts[key]) for key in LABELS if parts.get(key)]


def target_device() -> Device:
    """The largest live worker's device; this machine's when no worker reported yet."""
    best = None
    for worker in Worker.objects.all():
        if (
            worker.is_alive
            and worker.memory_total_mb
            and (best is None or worker.memory_total_mb > best.memory_total_mb)
        ):
            best = worker
    if best is not None:
        kind = "cpu" if best.device.startswith("CPU") else "cuda"
        return Device(kind, best.device, best.memory_total_mb, kind == "cpu" and best.cpu_bf16)
    memory = psutil.virtual_memory().total / 2**20
    return Device("cpu", "this machine's CPU", memory, this_cpu_has_bf16())


def this_cpu_has_bf16() -> bool:
    """Whether this machine's CPU has native bf16 matmuls (from its flags, without torch)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return False


def capacity_for(base: BaseModel | str, config: dict) -> Capacity | None:
    """The estimate for fine-tuning ``base`` (a store model, or a model folder's path);
    None when the folder has no readable config (e.g. not downloaded yet)."""
    try:
        facts = read_model_facts(base if isinstance(base, str) else base.path)
    except (OSError, ValueError):
        return None
    device = target_device()
    estimate = estimate_memory(
        facts.arch,
        MemorySettings.from_config(SimpleNamespace(**config)),
        device=device.kind,
        checkpoint_dtype=facts.checkpoint_dtype,
        cpu_bf16=device.cpu_bf16,
    )
    ok, headroom = fits(estimate, device.memory_mb)
    return Capacity(estimate, device, ok, headroom)


def largest_worker_bytes() -> int:
    """Memory of the largest live worker (this machine's when none reported yet): what a
    design's training must fit in."""
    return int(target_device().memory_mb * 2**20)


# Beside the adapter weights, a run folder holds a copy of the tokenizer, the
# TensorBoard events and the run's YAML: a few MB for the models the lab serves.
RUN_FOLDER_EXTRA_BYTES = 16 * 2**20


def expected_disk_bytes(capacity: Capacity | None, config: dict) -> int:
    """What a run's folder will hold at most: the fp32 adapter, and each kept checkpoint's
    adapter with its two AdamW moments (three copies of the LoRA weights)."""
    lora_bytes = 4 * (capacity.estimate.lora_params if capacity else 0)
    kept = max(1, int(config.get("keep_checkpoints") or 1))
    return lora_bytes * (1 + 3 * kept) + RUN_FOLDER_EXTRA_BYTES
