"""This process's devices, read with torch: every CUDA GPU, Apple MPS, and the CPU."""

from __future__ import annotations

import os

import psutil
import torch

from training.engine.devices import DeviceReport, cuda_report, training_device
from training.engine.train.speed import cpu_has_fast_bf16


def cuda_devices() -> list[DeviceReport]:
    if not torch.cuda.is_available():
        return []
    reports = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        reports.append(
            cuda_report(index, props.name, props.total_memory / 2**20, (props.major, props.minor))
        )
    return reports


def mps_device() -> DeviceReport | None:
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        return None
    # Apple silicon shares one memory between CPU and GPU; torch caps MPS at a share of it.
    memory = psutil.virtual_memory().total / 2**20
    return DeviceReport("mps", "Apple silicon GPU", memory, bf16=False, fp16=True)


def cpu_device() -> DeviceReport:
    memory = psutil.virtual_memory().total / 2**20
    return DeviceReport("cpu", f"CPU ({os.cpu_count()} cores)", memory, bf16=cpu_has_fast_bf16())


def all_devices() -> list[DeviceReport]:
    """Each CUDA GPU, then MPS, then the CPU (always present)."""
    mps = mps_device()
    return [*cuda_devices(), *([mps] if mps else []), cpu_device()]


def this_device() -> DeviceReport:
    """The device a run in this process trains on (the first GPU, else MPS, else the CPU)."""
    device = training_device(all_devices())
    assert device is not None  # the CPU is always there
    return device
