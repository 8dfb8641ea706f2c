"""The device's peak dense matmul throughput, for model FLOPs utilisation (MFU).

MFU = training FLOPs the model needs per token x tokens per second / the device's
peak. A CPU's peak is its vector width x FMA x two pipes x clock x the cores this
process may use, read from /proc/cpuinfo (no torch); a GPU's is its datasheet's
dense bf16 figure (fp32 without bf16 autocast), for the GPUs the lab meets.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Dense (no sparsity) TFLOP/s by GPU name fragment: (bf16, fp32).
GPU_PEAK_TFLOPS = {
    "H200": (989.0, 67.0),
    "H100": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L40S": (362.0, 91.6),
    "L4": (121.0, 30.3),
    "A10": (125.0, 31.2),
    "RTX 4090": (165.0, 82.6),
    "RTX 3090": (71.0, 35.6),
    "T4": (65.0, 8.1),
}


# bf16 multiply rate per core and cycle against fp32's: avx512_bf16's vdpbf16ps does two
# bf16 products per fp32 lane (2x); an AMX tile unit does 1024 bf16 FLOPs a cycle (Intel's
# figure for Sapphire Rapids and later), against 2 pipes x 16 lanes x 2 (FMA) = 64 for fp32.
AMX_BF16_FLOPS_PER_CYCLE = 1024


def cpu_peak_flops(
    cpuinfo: str | None = None, cores: int | None = None, bf16: bool = False
) -> float:
    """fp32 FLOP/s of the cores this process may run on; with ``bf16`` the bf16 peak
    (AMX, else avx512_bf16 at twice the fp32 rate, else the fp32 peak: no native bf16)."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    flags = cpu_flags(text)
    mhz_line = re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)
    ghz = float(mhz_line.group(1)) / 1000 if mhz_line else 2.0
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    cores = cores or len(os.sched_getaffinity(0))
    per_cycle = lanes * fma * 2
    if bf16 and "amx_bf16" in flags:
        per_cycle = AMX_BF16_FLOPS_PER_CYCLE
    elif bf16 and "avx512_bf16" in flags:
        per_cycle *= 2
    return per_cycle * ghz * 1e9 * cores


def cpu_flags(cpuinfo: str) -> set[str]:
    flags_line = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    return set(flags_line.group(1).split()) if flags_line else set()


def gpu_peak_flops(name: str, bf16: bool) -> float | None:
    for fragment, (bf16_tflops, fp32_tflops) in GPU_PEAK_TFLOPS.items():
        if fragment in name:
            return (bf16_tflops if bf16 else fp32_tflops) * 1e12
    return None


def device_peak_flops(device: str, bf16: bool = False) -> float | None:
    """The peak of this process's device ("cpu" or "cuda"); None when unknown."""
    if device == "cuda":
        import torch

        return gpu_peak_flops(torch.cuda.get_device_name(0), bf16)
    try:
        return cpu_peak_flops()
    except OSError:
        return None


def mfu(flops_per_token: float, tokens_per_second: float, peak_flops: float | None) -> float | None:
    if not peak_flops or tokens_per_second <= 0:
        return None
    return flops_per_token * tokens_per_second / peak_flops
