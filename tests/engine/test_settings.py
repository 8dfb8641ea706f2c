"""The Advanced settings, each by a real short run of the bundled model.

Every run trains the same four examples in one micro-batch a step, so each step sees
the same data and its loss must go down; without dropout and in fp32 nothing but the
setting under test moves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from training.engine.config import RunConfig
from training.engine.data import samples
from training.engine.models.arch import read_model_facts
from training.engine.models.memory import estimate_memory
from training.engine.train.loop import TrainHooks, train

STEPS = 4


@pytest.fixture(scope="module")
def four_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_sample_dataset(tmp_path_factory.mktemp("data") / "four.jsonl", n=4)


def run(model_dir: Path, dataset: Path, output_dir: Path, **settings: Any) -> dict[str, Any]:
    config = RunConfig(
        model_dir=str(model_dir),
        dataset_path=str(dataset),
        output_dir=str(output_dir),
        **{
            "quantization": "none",
            "autocast": "float32",
            "lora_dropout": 0.0,
            "batch_size": 4,
            "max_steps": STEPS,
            "max_seq_len": 64,
            "learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "eval_examples": 0,
            "checkpoint_every": 0,
            **settings,
        },
    )
    metrics: list[Any] = []
    logs: list[str] = []
    result = train(config, TrainHooks(on_metrics=metrics.append, on_log=logs.append))
    return {"config": config, "result": result, "losses": [m.loss for m in metrics], "logs": logs}


def assert_learns(losses: list[float]) -> None:
    assert len(losses) == STEPS
    assert losses[-1] < losses[0] * 0.97, losses


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw8bit", "paged_adamw8bit", "paged_adamw32bit"])
def test_each_bitsandbytes_optimizer_learns_and_holds_the_estimated_state(
    optimizer: str, model_dir: Path, four_rows: Path, tmp_path: Path
) -> None:
    done = run(model_dir, four_rows, tmp_path, optimizer=optimizer)
    assert_learns(done["losses"])
    arch = read_model_facts(model_dir).arch
    estimate = estimate_memory(arch, done["config"], device="cpu")
    measured = done["result"].optimizer_state_mb
    assert measured == pytest.approx(estimate.optimizer_mb, rel=0.01)
    adamw = estimate_memory(arch, RunConfig("m", "d", "o", optimizer="adamw")).optimizer_mb
    if optimizer.endswith("8bit"):  # a quarter of AdamW's state, and a little more
        assert adamw / 4.5 < measured < adamw / 3
    else:
        assert measured == pytest.approx(adamw, rel=0.01)
    if not torch.cuda.is_available() and optimizer.startswith("paged_"):
        assert any("runs unpaged" in line for line in done["logs"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [
        # rsLoRA with a constant schedule after one warmup step (lr 0 at step 1)
        {"use_rslora": True, "lr_scheduler": "constant_with_warmup", "warmup_steps": 1},
        {"use_dora": True},
        {"lora_embeddings": True, "autocast": "auto"},
    ],
    ids=["rslora-constant-with-warmup", "dora", "embeddings-auto-precision"],
)
def test_each_lora_variant_learns_and_is_estimated(
    variant: dict[str, Any], model_dir: Path, four_rows: Path, tmp_path: Path
) -> None:
    done = run(model_dir, four_rows, tmp_path, **variant)
    losses = done["losses"]
    if "warmup_steps" in variant:
        assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # step 1 trained at lr 0
        losses = losses[1:]
    assert losses[-1] < losses[0] * 0.97, losses
    config = (Path(done["result"].adapter_dir) / "adapter_config.json").read_text()
    if variant.get("use_dora"):
        assert '"use_dora": true' in config
    if variant.get("use_rslora"):
        assert '"use_rslora": true' in config
    if variant.get("lora_embeddings"):
        assert "embed_tokens" in config and "lm_head" in config
    # The estimate counts DoRA's magnitudes and the embedding adapters as peft makes them.
    params = estimate_memory(read_model_facts(model_dir).arch, done["config"]).lora_params
    assert any(f"trainable params: {params:,} " in line for line in done["logs"]), done["logs"]
    # The run says what precision it trained in ("auto" resolved on this device).
    picked = done["result"].precision
    if variant.get("autocast") == "auto":
        assert picked.startswith(("bf16 (auto", "fp32 (auto")), picked
    else:
        assert picked == "fp32 (fp32 as chosen)"
    assert f"precision: {picked}" in done["logs"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_cuda_trains_in_each_precision_it_has(
    precision: str, model_dir: Path, four_rows: Path, tmp_path: Path
) -> None:
    if precision == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    done = run(model_dir, four_rows, tmp_path, autocast=precision, quantization="4bit")
    assert_learns(done["losses"])
    assert done["result"].precision.startswith({"bfloat16": "bf16", "float16": "fp16"}[precision])


@pytest.mark.skipif(
    not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()),
    reason="needs Apple silicon (MPS)",
)
@pytest.mark.slow
def test_mps_trains_plain_lora(model_dir: Path, four_rows: Path, tmp_path: Path) -> None:
    done = run(model_dir, four_rows, tmp_path)
    assert_learns(done["losses"])
    assert any("on mps: " in line for line in done["logs"])
