"""What a device can train with: reports from the workers and the decisions on them.

Pure functions of a :class:`DeviceReport` (no torch here): the web process decides
with them from a worker's heartbeat before a run is queued, and the worker decides
again from its own device (:func:`training.engine.train.hardware.this_device`), so a
setting the device cannot run is refused in the form with the reason and the nearest
working choice, never found out by a crash on the worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from training.engine.config import BNB_OPTIMIZERS

KINDS = ("cuda", "mps", "cpu")
# The run form says bf16/fp16/fp32; run.yaml keeps the dtype names it always had.
PRECISION_LABELS = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
# bitsandbytes 0.50: CUDA has every kernel; its CPU backend runs 4-bit, 8-bit layers and
# the 8-bit optimizers (paged ones unpaged); it has no Apple MPS kernels.
BNB_QUANTIZATION = {"cuda": ("4bit", "8bit"), "cpu": ("4bit", "8bit"), "mps": ()}
BNB_OPTIMIZER_DEVICES = ("cuda", "cpu")


@dataclass(frozen=True)
class DeviceReport:
    """One device of a worker, as its heartbeat describes it."""

    kind: str  # "cuda", "mps" or "cpu"
    name: str
    memory_mb: float
    bf16: bool = False  # native bfloat16 matmuls (CUDA capability 8.0+, avx512_bf16/AMX)
    fp16: bool = False  # fast float16 (CUDA, MPS); CPUs have none
    capability: str = ""  # CUDA compute capability, e.g. "8.0"
    index: int = 0  # the CUDA device index

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceReport:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @property
    def label(self) -> str:
        if self.kind == "cuda":
            cap = f", compute {self.capability}" if self.capability else ""
            return f"{self.name} (CUDA{cap}, {self.memory_mb / 1024:.0f} GB)"
        if self.kind == "mps":
            return f"{self.name} (Apple MPS, {self.memory_mb / 1024:.0f} GB shared)"
        return f"{self.name} ({self.memory_mb / 1024:.0f} GB RAM)"


def cuda_report(
    index: int, name: str, memory_mb: float, capability: tuple[int, int]
) -> DeviceReport:
    major, minor = capability
    return DeviceReport(
        kind="cuda",
        name=name,
        memory_mb=memory_mb,
        bf16=major >= 8,  # Ampere and newer
        fp16=(major, minor) >= (5, 3),
        capability=f"{major}.{minor}",
        index=index,
    )


def training_device(devices: list[DeviceReport]) -> DeviceReport | None:
    """The device a worker trains on: its first CUDA GPU, else MPS, else its CPU."""
    for kind in KINDS:
        for device in devices:
            if device.kind == kind:
                return device
    return None


@dataclass(frozen=True)
class Precision:
    """The precision a run trains in on a device, and why (what the run page shows)."""

    dtype: str  # "bfloat16", "float16" or "float32"
    reason: str

    @property
    def label(self) -> str:
        return PRECISION_LABELS[self.dtype]


class Refused(ValueError):
    """A setting the device cannot run: the field, why, and the nearest working value."""

    def __init__(self, field: str, reason: str, nearest: str) -> None:
        self.field, self.reason, self.nearest = field, reason, nearest
        super().__init__(f"{reason}; nearest working choice: {nearest}")


def resolve_precision(requested: str, quantization: str, device: DeviceReport) -> Precision:
    """The precision ``requested`` ("auto", "bfloat16", "float16", "float32") runs in on
    ``device``; :class:`Refused` when the device has no such precision.

    "auto" is the fastest accurate choice: bf16 where the device computes it natively
    (the range of fp32, so no loss scaling), else fp32; fp16 only when asked for, since
    its narrow range needs loss scaling. 8-bit layers compute in their own dtype.
    """
    if requested == "float32":
        return Precision("float32", "fp32 as chosen")
    if requested == "bfloat16":
        if not device.bf16:
            nearest = "fp16" if device.fp16 else "fp32"
            raise Refused("autocast", f"{_no('bf16', device)}", nearest)
        return Precision("bfloat16", f"bf16 as chosen ({device.name} has native bf16)")
    if requested == "float16":
        if not device.fp16:
            nearest = "bf16" if device.bf16 else "fp32"
            raise Refused("autocast", f"{_no('fp16', device)}", nearest)
        scaling = " with loss scaling" if device.kind == "cuda" else ""
        return Precision("float16", f"fp16 as chosen{scaling}")
    if quantization == "8bit":
        return Precision("float32", "auto: 8-bit layers compute in their own dtype; the rest fp32")
    if device.bf16 and device.kind in ("cuda", "cpu"):
        return Precision("bfloat16", f"auto: {device.name} computes bf16 natively")
    return Precision("float32", f"auto: {device.name} has no native bf16, so fp32")


def _no(precision: str, device: DeviceReport) -> str:
    if device.kind == "cpu":
        why = (
            "no avx512_bf16 or AMX instructions"
            if precision == "bf16"
            else "CPUs have no fast fp16 matmuls"
        )
        return f"{precision} is not available on {device.name}: {why}"
    if device.kind == "cuda":
        return (
            f"{precision} is not available on {device.name} (compute capability "
            f"{device.capability}; bf16 needs 8.0 or newer)"
        )
    return f"{precision} is not available on {device.name}"


def check_support(settings: Any, device: DeviceReport) -> dict[str, str]:
    """Field -> message for each setting of ``settings`` (a RunConfig or the form's
    values) that ``device`` cannot run, each with the nearest working choice."""
    errors: dict[str, str] = {}
    quantization = getattr(settings, "quantization", "none")
    if quantization != "none" and quantization not in BNB_QUANTIZATION.get(device.kind, ()):
        errors["quantization"] = (
            f"bitsandbytes has no {quantization} kernels for {device.name} ({device.kind}): "
            "train plain LoRA instead (quantization: none), or pick a worker with a CUDA GPU"
        )
    optimizer = getattr(settings, "optimizer", "adamw")
    if optimizer in BNB_OPTIMIZERS and device.kind not in BNB_OPTIMIZER_DEVICES:
        errors["optimizer"] = (
            f"bitsandbytes' {optimizer} does not run on {device.name} ({device.kind}): "
            "use AdamW (or SGD for the least memory)"
        )
    try:
        resolve_precision(getattr(settings, "autocast", "auto"), quantization, device)
    except Refused as refused:
        errors[refused.field] = f"{refused.reason}; choose {refused.nearest} instead"
    return errors
