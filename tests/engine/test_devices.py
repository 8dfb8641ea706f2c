"""What each device can train with: pure decisions on device reports.

The reports are the ones a worker's heartbeat writes, made up for GPUs and Macs this
machine does not have; the decisions are the functions the form and the worker call.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from training.engine.devices import (
    DeviceReport,
    Refused,
    check_support,
    cuda_report,
    resolve_precision,
    training_device,
)

H100 = cuda_report(0, "NVIDIA H100", 81_559, (9, 0))
A100 = cuda_report(1, "NVIDIA A100", 40_960, (8, 0))
T4 = cuda_report(0, "Tesla T4", 15_360, (7, 5))
MAC = DeviceReport("mps", "Apple silicon GPU", 32_768, fp16=True)
OLD_CPU = DeviceReport("cpu", "CPU (8 cores)", 16_384)
BF16_CPU = DeviceReport("cpu", "CPU (32 cores)", 65_536, bf16=True)


def settings(**values) -> SimpleNamespace:
    return SimpleNamespace(
        **{"quantization": "4bit", "optimizer": "adamw", "autocast": "auto", **values}
    )


def test_cuda_capability_says_which_half_precisions_a_gpu_has() -> None:
    assert (H100.bf16, H100.fp16, H100.capability) == (True, True, "9.0")
    assert (A100.bf16, A100.index) == (True, 1)
    assert (T4.bf16, T4.fp16) == (False, True)
    assert cuda_report(0, "GTX 750", 2048, (5, 0)).fp16 is False


def test_a_worker_trains_on_its_first_gpu_else_mps_else_its_cpu() -> None:
    assert training_device([OLD_CPU, A100, H100]) == A100
    assert training_device([OLD_CPU, MAC]) == MAC
    assert training_device([OLD_CPU]) == OLD_CPU
    assert training_device([]) is None


def test_reports_round_trip_through_the_heartbeat_json() -> None:
    assert DeviceReport.from_dict({**H100.to_dict(), "later_field": 1}) == H100


@pytest.mark.parametrize(
    ("device", "quantization", "picked"),
    [
        (H100, "4bit", "bfloat16"),
        (T4, "4bit", "float32"),
        (BF16_CPU, "none", "bfloat16"),
        (OLD_CPU, "4bit", "float32"),
        (MAC, "none", "float32"),
        (H100, "8bit", "float32"),  # 8-bit layers compute in their own dtype
    ],
)
def test_auto_picks_the_fastest_accurate_precision_per_device(device, quantization, picked) -> None:
    precision = resolve_precision("auto", quantization, device)
    assert precision.dtype == picked
    assert precision.reason.startswith("auto: ")
    assert device.name in precision.reason or quantization == "8bit"


@pytest.mark.parametrize(
    ("device", "asked", "nearest"),
    [
        (T4, "bfloat16", "fp16"),
        (OLD_CPU, "bfloat16", "fp32"),
        (OLD_CPU, "float16", "fp32"),
        (BF16_CPU, "float16", "bf16"),
        (MAC, "bfloat16", "fp16"),
    ],
)
def test_a_precision_the_device_lacks_is_refused_with_the_nearest_choice(
    device, asked, nearest
) -> None:
    with pytest.raises(Refused) as refused:
        resolve_precision(asked, "none", device)
    assert refused.value.field == "autocast" and refused.value.nearest == nearest
    assert device.name in refused.value.reason
    # The nearest choice is one the device runs.
    dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[nearest]
    assert resolve_precision(dtype, "none", device).dtype == dtype


def test_fp16_on_cuda_says_it_scales_the_loss() -> None:
    assert "loss scaling" in resolve_precision("float16", "4bit", T4).reason
    assert "loss scaling" not in resolve_precision("float16", "none", MAC).reason


def test_bitsandbytes_settings_are_refused_where_it_has_no_kernels() -> None:
    assert check_support(settings(), H100) == {}
    assert check_support(settings(quantization="8bit", optimizer="paged_adamw8bit"), OLD_CPU) == {}
    errors = check_support(settings(optimizer="adamw8bit"), MAC)
    assert set(errors) == {"quantization", "optimizer"}
    assert "quantization: none" in errors["quantization"]  # the LoRA alternative
    assert "AdamW" in errors["optimizer"]
    assert check_support(settings(quantization="none"), MAC) == {}


def test_a_refused_precision_is_reported_on_its_field() -> None:
    errors = check_support(settings(autocast="bfloat16"), T4)
    assert errors == {"autocast": errors["autocast"]}
    assert errors["autocast"].endswith("choose fp16 instead")
