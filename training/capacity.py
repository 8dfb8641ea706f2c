"""Will this run fit? The engine's memory estimate against the lab's real workers."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import psutil
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from projects.models import BaseModel
from training.engine.devices import DeviceReport, training_device
from training.engine.models.arch import read_model_facts
from training.engine.models.memory import (
    SAFETY_MARGIN,
    MemoryEstimate,
    MemorySettings,
    estimate_memory,
    fits,
    usable_mb,
)
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
    """A worker class: the device its live workers train on (identical ones count once)."""

    report: DeviceReport
    workers: int = 0  # live workers with this device; 0: this machine, before any reported

    @property
    def kind(self) -> str:  # "cpu", "cuda" or "mps"
        return self.report.kind

    @property
    def name(self) -> str:
        return self.report.name

    @property
    def memory_mb(self) -> float:
        return self.report.memory_mb

    @property
    def cpu_bf16(self) -> bool:
        """A CPU with native bf16 matmuls: runs take bf16 autocast there."""
        return self.kind == "cpu" and self.report.bf16

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}:{self.memory_mb:.0f}"

    @property
    def label(self) -> str:
        if not self.workers:
            return f"{self.report.label}, {_('no worker yet')}"
        return f"{self.report.label}, " + ngettext(
            "%(n)d worker", "%(n)d workers", self.workers
        ) % {"n": self.workers}


@dataclass(frozen=True)
class Capacity:
    estimate: MemoryEstimate
    device: Device
    fits: bool
    headroom_mb: float  # below the usable memory (the device's less the safety margin)

    @property
    def used_percent(self) -> int:
        return min(100, round(100 * self.estimate.total_mb / self.device.memory_mb))

    @property
    def margin_percent(self) -> int:
        return round(100 * SAFETY_MARGIN)

    @property
    def usable_mb(self) -> float:
        return usable_mb(self.device.memory_mb)

    def rows(self) -> list[tuple[str, float]]:
        parts = self.estimate.breakdown()
        return [(LABELS[key], parts[key]) for key in LABELS if parts.get(key)]


def worker_report(worker: Worker) -> DeviceReport:
    """The device ``worker`` trains on, from its heartbeat (older rows: its summary)."""
    reports = [DeviceReport.from_dict(d) for d in worker.devices or []]
    device = training_device(reports)
    if device is not None:
        return device
    kind = "cpu" if worker.device.startswith("CPU") else "cuda"
    return DeviceReport(
        kind,
        worker.device,
        worker.memory_total_mb or 0.0,
        bf16=worker.cpu_bf16 if kind == "cpu" else True,
        fp16=kind == "cuda",
    )


def worker_classes() -> list[Device]:
    """The devices of the live training workers, largest memory first."""
    counts: dict[DeviceReport, int] = {}
    for worker in Worker.objects.all():
        if worker.is_alive and worker.memory_total_mb:
            report = worker_report(worker)
            counts[report] = counts.get(report, 0) + 1
    classes = [Device(report, n) for report, n in counts.items()]
    return sorted(classes, key=lambda d: (-d.memory_mb, d.key))


def this_machine() -> Device:
    memory = psutil.virtual_memory().total / 2**20
    return Device(DeviceReport("cpu", "this machine's CPU", memory, bf16=this_cpu_has_bf16()))


def target_device(key: str | None = None) -> Device:
    """The worker class ``key`` names, else the one with the most memory; this
    machine's CPU when no worker has reported yet."""
    classes = worker_classes()
    for device in classes:
        if device.key == key:
            return device
    return classes[0] if classes else this_machine()


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


def capacity_for(
    base: BaseModel | str, config: dict, device: Device | None = None
) -> Capacity | None:
    """The estimate for fine-tuning ``base`` (a store model, or a model folder's path) on
    ``device`` (a worker class; by default the largest); None when the folder has no
    readable config (e.g. not downloaded yet)."""
    try:
        facts = read_model_facts(base if isinstance(base, str) else base.path)
    except (OSError, ValueError):
        return None
    device = device or target_device()
    estimate = estimate_memory(
        facts.arch,
        MemorySettings.from_config(SimpleNamespace(**config)),
        device=device.kind,
        checkpoint_dtype=facts.checkpoint_dtype,
        cpu_bf16=device.cpu_bf16,
        gpu_bf16=device.kind == "cuda" and device.report.bf16,
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
