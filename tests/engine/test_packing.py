"""Packing is an optimisation only: the same loss and gradients as right-padded batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.engine.helpers import read_alpaca, tokenize_rows
from training.engine.config import RunConfig
from training.engine.data.tokenize import IGNORE_INDEX
from training.engine.models import store
from training.engine.train.batches import collate, count_real, count_trained, pack, summed_loss
from training.engine.train.loop import TrainHooks, train
from training.engine.train.lora import attach_lora

X = IGNORE_INDEX


def lora_config(**overrides: Any) -> RunConfig:
    settings: dict[str, Any] = {"quantization": "none", "lora_dropout": 0.0, **overrides}
    return RunConfig(model_dir="m", dataset_path="d", output_dir="o", **settings)


def tiny_llama() -> Any:
    """A 2-layer random Llama with LoRA whose B matrices are not zero (so A gets gradients)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        attn_implementation="sdpa",
    )
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    return get_peft_model(LlamaForCausalLM(config), lora).train()


def random_examples(lengths: list[int], seed: int = 0) -> list[dict[str, list[int]]]:
    """Varied lengths; prompts masked, except every other example trains its first token."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i, n in enumerate(lengths):
        ids = torch.randint(1, 96, (n,), generator=generator).tolist()
        prompt = 0 if i % 2 else min(3, n - 1)
        examples.append({"input_ids": ids, "labels": [X] * prompt + ids[prompt:]})
    return examples


def loss_and_grads(model: Any, batch: dict[str, torch.Tensor]) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = summed_loss(model, batch) / count_trained(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss), grads


def assert_same_loss_and_grads(model: Any, examples: list, row_len: int, atol: float) -> None:
    padded = collate(examples, pad_id=0)
    packed = pack(examples, pad_id=0, row_len=row_len)

    padded_loss, padded_grads = loss_and_grads(model, padded)
    packed_loss, packed_grads = loss_and_grads(model, packed)

    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    assert count_trained(packed) == count_trained(padded)
    assert count_real(packed) == count_real(padded)
    assert packed_loss == pytest.approx(padded_loss, abs=atol, rel=0)
    assert padded_grads.keys() == packed_grads.keys() and len(padded_grads) > 0
    for name, grad in padded_grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(packed_grads[name], grad, atol=atol, rtol=0, msg=name)


def test_it_packs_examples_with_boundaries_positions_and_masked_first_labels() -> None:
    examples = [
        {"input_ids": [1, 2, 3, 4, 5], "labels": [1, 2, 3, 4, 5]},
        {"input_ids": [6, 7, 8], "labels": [X, 7, 8]},
        {"input_ids": [9, 10], "labels": [9, 10]},
        {"input_ids": [11, 12, 13, 14], "labels": [X, X, 13, 14]},
    ]

    batch = pack(examples, pad_id=0, row_len=8)

    # First-fit decreasing: [5 + 3], [4 + 2] then 2 pads that form a sequence of their own.
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7, 8], [11, 12, 13, 14, 9, 10, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[X, 2, 3, 4, 5, X, 7, 8], [X, X, 13, 14, X, 10, X, X]]
    assert batch["token_mask"].tolist() == [[1] * 8, [1] * 6 + [0, 0]]
    assert "attention_mask" not in batch  # it would switch off the packed-sequence masking
    assert count_trained(batch) == count_trained(collate(examples, pad_id=0)) == 9
    assert count_real(batch) == 14


def test_it_never_splits_an_example_longer_than_a_row() -> None:
    batch = pack(random_examples([10, 3]), pad_id=0, row_len=6)

    assert batch["input_ids"].shape == (2, 10)
    assert batch["position_ids"][0].tolist() == list(range(10))


@pytest.mark.parametrize("row_len", [64, 200])  # several rows, or everything in one row
def test_it_gives_the_padded_loss_and_gradients_exactly(row_len: int) -> None:
    model = tiny_llama()
    examples = random_examples([40, 7, 23, 64, 2, 31, 12, 50])

    assert_same_loss_and_grads(model, examples, row_len=row_len, atol=1e-5)


@pytest.mark.slow
def test_it_gives_the_padded_loss_and_gradients_on_the_bundled_model(
    model_dir: Path, tokenizer: Any, sample_dataset: Path
) -> None:

    model, _ = store.load_model_and_tokenizer(model_dir, quantization="none")
    model = attach_lora(model, lora_config(autocast="float32"))  # exact: same dtype
    for module in model.modules():  # LoRA B starts at zero: make A's gradients non-zero too
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    examples, _ = tokenize_rows(tokenizer, read_alpaca(sample_dataset)[:6], 96)
    examples[1] = {**examples[1], "labels": examples[1]["input_ids"]}  # trains its first token

    assert_same_loss_and_grads(model.train(), examples, row_len=96, atol=1e-5)


@pytest.mark.slow
def test_training_packs_by_default_and_matches_the_padded_run(
    model_dir: Path, sample_dataset: Path, tmp_path: Path, tiny_config: Any
) -> None:
    def run(**overrides: Any) -> list[Any]:
        metrics: list[Any] = []
        settings = {
            "quantization": "none",
            "lora_dropout": 0.0,
            "max_steps": 2,
            "autocast": "float32",  # exactness is checked in one dtype
            **overrides,
        }
        train(
            tiny_config(model_dir, sample_dataset, tmp_path, **settings),
            TrainHooks(on_metrics=metrics.append),
        )
        return metrics

    assert RunConfig("m", "d", "o").packing is True
    packed, padded = run(), run(packing=False)

    assert [m.tokens for m in packed] == [m.tokens for m in padded]
    for a, b in zip(packed, padded, strict=True):
        assert a.loss == pytest.approx(b.loss, abs=1e-5, rel=0)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-4)
