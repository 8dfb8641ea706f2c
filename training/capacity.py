"""Will this run fit? The engine's memory estimate against the lab's real workers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import psutil

from projects.models import BaseModel
from training.engine.catalog import arch_from_config_dict
from training.engine.memory import MemoryEstimate, MemorySettings, estimate_memory, fits
from training.engine.speed import cpu_has_fast_bf16
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
class Capacity:
    estimate: MemoryEstimate
    device: str  # "cpu" or "cuda"
    device_name: str
    device_memory_mb: float
    fits: bool
    headroom_mb: float

    @property
    def used_percent(self) -> int:
        return min(100, round(100 * self.estimate.total_mb / self.device_memory_mb))

    def rows(self) -> list[tuple[str, float]]:
        parts = self.estimate.breakdown()
        return [(LABELS[key], parts[key]) for key in LABELS if parts.get(key)]


def target_device() -> tuple[str, str, float]:
    """The largest live worker's device; this machine's memory when no worker reported yet."""
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
        return kind, best.device, best.memory_total_mb
    return "cpu", "this machine's CPU", psutil.virtual_memory().total / 2**20


def capacity_for(base_model: BaseModel, config: dict) -> Capacity | None:
    """None when the model's folder has no readable config (e.g. not downloaded yet)."""
    try:
        model_config = json.loads((Path(base_model.path) / "config.json").read_text())
        arch = arch_from_config_dict(model_config)
    except (OSError, ValueError, KeyError):
        return None
    device, name, memory_mb = target_device()
    settings = MemorySettings.from_config(SimpleNamespace(**config))
    estimate = estimate_memory(
        arch,
        settings,
        device=device,
        checkpoint_dtype=model_config.get("dtype") or model_config.get("torch_dtype") or "float32",
        cpu_bf16=device == "cpu" and cpu_has_fast_bf16(),  # CPU workers: assumed this CPU
    )
    ok, headroom = fits(estimate, memory_mb)
    return Capacity(estimate, device, name, memory_mb, ok, headroom)
