"""The memory estimate and the recommended settings."""

from __future__ import annotations

import pytest

from training.engine.config import RunConfig
from training.engine.models.catalog import CATALOG, get_model
from training.engine.models.memory import (
    EIGHT_GB_MB,
    SAFETY_MARGIN,
    MemorySettings,
    estimate_memory,
    fits,
    recommend,
    weight_bytes,
)

SMOL = get_model("smollm2-135m").arch


def total(**changes) -> float:
    return estimate_memory(SMOL, MemorySettings(**changes)).total_mb


def test_it_grows_with_sequence_length_batch_and_rank() -> None:
    assert total(max_seq_len=128) < total(max_seq_len=256) < total(max_seq_len=1024)
    assert total(batch_size=1) < total(batch_size=2) < total(batch_size=8)
    assert total(lora_r=4) < total(lora_r=16) < total(lora_r=64)


def test_it_orders_weights_4bit_8bit_bf16_fp32() -> None:
    sizes = [
        sum(weight_bytes(SMOL, "4bit", "nf4", True, "float32")),
        sum(weight_bytes(SMOL, "8bit", "nf4", True, "float32")),
        sum(weight_bytes(SMOL, "none", "nf4", True, "bfloat16")),
        sum(weight_bytes(SMOL, "none", "nf4", True, "float32")),
    ]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4


def test_it_counts_4bit_block_overhead() -> None:
    linear_4bit, rest = weight_bytes(SMOL, "4bit", "nf4", False, "float32")
    with_dq, _ = weight_bytes(SMOL, "4bit", "nf4", True, "float32")
    fp4, _ = weight_bytes(SMOL, "4bit", "fp4", False, "float32")
    n = 30 * 2_654_208 + 30 * 884_736  # linear weights: MLP + attention, 30 layers
    assert linear_4bit == n / 2 + n / 64 * 4  # one fp32 absmax per 64 weights
    assert n / 2 < with_dq < linear_4bit
    assert fp4 == linear_4bit
    assert rest == (134_515_008 - n) * 4  # embeddings and norms stay fp32


def test_it_lowers_activations_with_gradient_checkpointing() -> None:
    plain = estimate_memory(SMOL, MemorySettings(gradient_checkpointing=False))
    checkpointed = estimate_memory(SMOL, MemorySettings(gradient_checkpointing=True))
    assert checkpointed.activations_mb < plain.activations_mb / 5


def test_it_orders_optimizer_states() -> None:
    def states(optimizer: str) -> float:
        return estimate_memory(SMOL, MemorySettings(optimizer=optimizer)).optimizer_mb

    assert states("adamw8bit") < states("sgd") < states("adamw")


def test_it_shows_the_logits_spike_of_large_vocabularies() -> None:
    qwen = estimate_memory(get_model("qwen2.5-0.5b").arch, MemorySettings())
    smol = estimate_memory(SMOL, MemorySettings())
    assert qwen.logits_mb == pytest.approx(smol.logits_mb * 151936 / 49152)


def test_it_takes_a_run_config() -> None:
    config = RunConfig("m", "d", "o", quantization="8bit", lora_r=16, target_modules=["q_proj"])
    from_config = estimate_memory(SMOL, config)
    assert from_config == estimate_memory(
        SMOL, MemorySettings(quantization="8bit", lora_r=16, target_modules=("q_proj",))
    )
    assert from_config.lora_params == 30 * 16 * (576 + 576)


def test_it_adds_the_cuda_context_on_a_gpu() -> None:
    cpu = estimate_memory(SMOL, MemorySettings(), device="cpu")
    cuda = estimate_memory(SMOL, MemorySettings(), device="cuda")
    assert cuda.checkpoint_mb == 0 and cpu.checkpoint_mb > 0
    assert set(cuda.breakdown()) >= {"weights_mb", "activations_mb", "logits_mb", "total_mb"}


def test_it_says_whether_a_run_fits_keeping_the_safety_margin() -> None:
    estimate = estimate_memory(SMOL, MemorySettings())
    room = (estimate.total_mb + 100) / (1 - SAFETY_MARGIN)
    assert fits(estimate, room) == (True, pytest.approx(100))
    ok, headroom = fits(estimate, estimate.total_mb + 1)  # fits the device, not the margin
    assert not ok and headroom < 0
    assert fits(estimate, estimate.total_mb + 1, margin=0)[0]


@pytest.mark.parametrize("model", CATALOG, ids=lambda m: m.key)
def test_it_recommends_settings_that_fit_an_8gb_gpu(model) -> None:
    values, reasons = recommend(model.arch, 2_000, 24 * 1024, preset="8gb", device="cuda")
    config = RunConfig("m", "d", "o", **values)
    config.validate()
    estimate = estimate_memory(model.arch, config, device="cuda")
    assert fits(estimate, EIGHT_GB_MB)[0]
    assert {field for field, _ in reasons} >= {"quantization", "learning_rate", "batch_size"}


def test_it_recommends_more_for_the_quality_preset() -> None:
    arch = get_model("qwen2.5-0.5b").arch
    small, _ = recommend(arch, 500, 80 * 1024, preset="8gb")
    quality, _ = recommend(arch, 500, 80 * 1024, preset="quality")
    assert quality["lora_r"] > small["lora_r"]
    assert quality["quantization"] == "none"
    assert quality["max_seq_len"] > small["max_seq_len"]


def test_it_says_when_nothing_fits() -> None:
    _, reasons = recommend(get_model("phi3-mini").arch, 100, 1024, preset="balanced")
    assert any("will not fit" in why for _, why in reasons)


def test_cpu_bf16_autocast_adds_the_bf16_copy_of_an_unquantized_models_linear_weights() -> None:
    from training.engine.models.arch import quantizable_param_count

    def weights(quantization: str, cpu_bf16: bool, device: str = "cpu", **changes) -> float:
        settings = MemorySettings(quantization=quantization, **changes)
        return estimate_memory(SMOL, settings, device, cpu_bf16=cpu_bf16).weights_mb

    bf16_copy = quantizable_param_count(SMOL) * 2 / 2**20
    assert weights("none", True) == pytest.approx(weights("none", False) + bf16_copy)
    assert weights("none", False, autocast="bfloat16") == weights("none", True)
    assert weights("none", True, autocast="float32") == weights("none", False)
    assert weights("none", True, device="cuda") == weights("none", False, device="cuda")
    for quantization in ("4bit", "8bit"):  # 4-bit dequantizes to bf16; 8-bit never autocasts
        assert weights(quantization, True) == weights(quantization, False)


def test_each_optimizer_the_config_accepts_has_an_estimate() -> None:
    from training.engine.config import OPTIMIZERS

    states = {
        name: estimate_memory(SMOL, MemorySettings(optimizer=name)).optimizer_mb
        for name in OPTIMIZERS
    }
    assert states["paged_adamw32bit"] == pytest.approx(states["adamw"], rel=0.001)
    assert states["paged_adamw8bit"] == states["adamw8bit"]
    assert states["adamw"] / 4.5 < states["adamw8bit"] < states["adamw"] / 3
    assert states["sgd"] == pytest.approx(states["adamw"] / 2, rel=0.001)


def test_8bit_states_stay_32_bit_for_small_tensors() -> None:
    from training.engine.models.memory import optimizer_state_bytes

    assert optimizer_state_bytes("adamw8bit", [4095]) == 8 * 4095
    big = optimizer_state_bytes("adamw8bit", [4096 * 16])
    assert big == 2 * 4096 * 16 + 2 * 256 * 4 + 2 * 256 * 4  # moments, absmax, quant maps


def test_dora_and_embedding_adapters_add_their_parameters() -> None:
    plain = estimate_memory(SMOL, MemorySettings())
    dora = estimate_memory(SMOL, MemorySettings(use_dora=True))
    embeddings = estimate_memory(SMOL, MemorySettings(lora_embeddings=True))
    out_features = sum(o for _, o in SMOL.linear_shapes().values())
    assert dora.lora_params == plain.lora_params + 30 * out_features
    assert dora.activations_mb > plain.activations_mb
    assert embeddings.lora_params == plain.lora_params + 2 * 8 * (49152 + 576)


def test_the_precision_moves_the_cuda_estimate() -> None:
    def on_gpu(autocast: str, gpu_bf16: bool = True) -> float:
        settings = MemorySettings(quantization="none", autocast=autocast)
        return estimate_memory(SMOL, settings, device="cuda", gpu_bf16=gpu_bf16).total_mb

    assert on_gpu("auto") == on_gpu("bfloat16") == on_gpu("float16") < on_gpu("float32")
    assert on_gpu("auto", gpu_bf16=False) == on_gpu("float32")  # a pre-Ampere GPU: fp32
    assert estimate_memory(SMOL, MemorySettings(), device="mps").checkpoint_mb == 0
