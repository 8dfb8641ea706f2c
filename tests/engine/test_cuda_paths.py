"""The CUDA-only speed paths: chosen only on CUDA with their package installed, and the
route the fused LM-head loss takes gives the model's own loss and gradients.

The kernels themselves (flash-attention 2, liger-kernel) need a GPU: the tests marked
``needs_cuda`` run there (``bench/gpu_check.sh`` runs them first) and are skipped here.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.engine.test_packing import lora_config, loss_and_grads, random_examples, tiny_llama
from training.engine.train import speed
from training.engine.train.batches import collate, count_trained, one_row, pack, wants_one_row

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_cpu_runs_keep_the_default_attention_and_loss() -> None:
    assert speed.attention_implementation("cpu", "bfloat16") is None
    assert speed.attention_implementation("cpu", "float32") is None
    assert speed.fused_head_loss("cpu") is None
    model = speed.speed_up(tiny_llama(), lora_config(autocast="float32"))
    assert speed.HEAD_LOSS_ATTR not in vars(model)


def test_cuda_takes_flash_attention_and_the_fused_loss_only_where_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = {"flash_attn": False, "liger_kernel": False}
    monkeypatch.setattr(speed, "installed", lambda name: present[name])
    assert speed.attention_implementation("cuda", "bfloat16") is None
    assert speed.fused_head_loss("cuda") is None
    present["flash_attn"] = True
    assert speed.attention_implementation("cuda", "bfloat16") == "flash_attention_2"
    assert speed.attention_implementation("cuda", "float16") == "flash_attention_2"
    assert speed.attention_implementation("cuda", "float32") is None  # flash has no fp32


def test_the_fused_loss_applies_only_to_a_plain_lm_head() -> None:
    model = tiny_llama()
    assert speed.head_loss_applies(model)
    model.get_base_model().config.final_logit_softcapping = 30.0  # Gemma-style: not plain
    assert not speed.head_loss_applies(model)


@pytest.mark.parametrize("packed", [True, False])
def test_the_hidden_state_route_gives_the_models_loss_and_gradients(packed: bool) -> None:
    examples = random_examples([40, 7, 23, 64, 2, 31])
    batch = pack(examples, pad_id=0, row_len=64) if packed else collate(examples, pad_id=0)
    reference = tiny_llama()
    routed = tiny_llama()
    setattr(routed, speed.HEAD_LOSS_ATTR, speed.plain_head_loss)

    ref_loss, ref_grads = loss_and_grads(reference, batch)
    loss, grads = loss_and_grads(routed, batch)

    assert loss == pytest.approx(ref_loss, abs=1e-5, rel=0)
    assert grads.keys() == ref_grads.keys() and len(grads) == 28
    for name, grad in ref_grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=0, msg=name)


def assert_close_in_direction(grads: dict, ref_grads: dict) -> None:
    """bf16 kernels: every gradient within cosine 0.99 of the reference's."""
    assert grads.keys() == ref_grads.keys()
    for name, grad in ref_grads.items():
        cosine = torch.nn.functional.cosine_similarity(
            grads[name].float().flatten(), grad.float().flatten(), dim=0
        )
        assert cosine > 0.99, name


def test_packed_rows_joined_into_one_row_give_the_same_loss_and_gradients() -> None:
    """What flash-attention's varlen path needs (one row), checked with SDPA on CPU."""
    batch = pack(random_examples([40, 7, 23, 64, 2, 31, 50]), pad_id=0, row_len=64)
    flat = one_row(batch)
    assert batch["input_ids"].size(0) > 1 and flat["input_ids"].size(0) == 1
    assert count_trained(flat) == count_trained(batch)
    model = tiny_llama()
    assert not wants_one_row(model)
    ref_loss, ref_grads = loss_and_grads(model, batch)
    loss, grads = loss_and_grads(model, flat)

    assert loss == pytest.approx(ref_loss, abs=1e-5, rel=0)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=0, msg=name)
    model.get_base_model().config._attn_implementation = "flash_attention_2"
    assert wants_one_row(model)


@needs_cuda
@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="no liger-kernel")
def test_on_cuda_the_fused_loss_is_within_bf16_bounds_of_the_plain_one() -> None:
    batch = pack(random_examples([40, 7, 23, 64, 2, 31]), pad_id=0, row_len=64)
    batch = {k: v.cuda() for k, v in batch.items()}
    reference = tiny_llama().cuda().to(torch.bfloat16)
    fused = tiny_llama().cuda().to(torch.bfloat16)
    setattr(fused, speed.HEAD_LOSS_ATTR, speed.fused_head_loss("cuda"))

    ref_loss, ref_grads = loss_and_grads(reference, batch)
    loss, grads = loss_and_grads(fused, batch)

    assert loss == pytest.approx(ref_loss, rel=1e-2)
    assert_close_in_direction(grads, ref_grads)


@needs_cuda
@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="no flash-attn")
def test_on_cuda_flash_attention_on_packed_rows_matches_sdpa_within_bf16_bounds() -> None:
    batch = pack(random_examples([40, 7, 23, 64, 2, 31]), pad_id=0, row_len=64)
    batch = {k: v.cuda() for k, v in batch.items()}
    reference = tiny_llama().cuda().to(torch.bfloat16)
    flash = tiny_llama().cuda().to(torch.bfloat16)
    flash.get_base_model().set_attn_implementation("flash_attention_2")

    ref_loss, ref_grads = loss_and_grads(reference, batch)
    loss, grads = loss_and_grads(flash, batch)

    assert loss == pytest.approx(ref_loss, rel=1e-2)
    assert_close_in_direction(grads, ref_grads)
