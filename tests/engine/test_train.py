"""Real QLoRA training of the bundled model: a few steps, 4-bit NF4, 64 tokens."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from training.engine.data.tokenize import IGNORE_INDEX
from training.engine.models import store
from training.engine.train.batches import collate, count_trained
from training.engine.train.loop import TrainHooks, iterate_batches, train
from training.engine.train.lora import resolve_target_modules
from training.engine.train.outcome import Outcome
from training.engine.train.process import memory_mb, reset_peak_memory

ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc")


def _touch_and_free(mb: int) -> None:
    block = bytearray(mb * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # resident, not just reserved
    del block


@pytest.mark.slow
def test_it_reports_metrics_after_every_step(trained_run: dict[str, Any]) -> None:
    metrics = trained_run["metrics"]

    assert [m.step for m in metrics] == [1, 2, 3]
    assert all(m.total_steps == 3 for m in metrics)
    assert all(math.isfinite(m.loss) and m.loss > 0 for m in metrics)
    assert all(m.tokens > 0 and m.tokens_per_second > 0 for m in metrics)
    assert all(m.cpu_peak_rss_mb >= m.cpu_rss_mb > 0 for m in metrics)
    assert all(m.gpu_mem_mb is None and m.gpu_peak_mb is None for m in metrics)
    assert all(math.isfinite(m.grad_norm) for m in metrics)
    assert metrics[-1].eta_s == 0
    assert metrics[0].epoch == pytest.approx(1 / 12)  # 24 rows, batch 2


@pytest.mark.slow
def test_it_logs_progress_for_people(trained_run: dict[str, Any]) -> None:
    logs = "\n".join(trained_run["logs"])

    assert "loading the model (4bit) on cpu" in logs
    assert "trainable params: " in logs and "%)" in logs
    assert "step 3/3 loss " in logs
    assert "adapter saved" in logs
    # A student reads this log: it names no server path.
    assert str(trained_run["output_dir"]) not in logs
    assert ".jsonl" not in logs and "SmolLM2" not in logs


@pytest.mark.slow
def test_it_saves_the_adapter_and_a_result_file(trained_run: dict[str, Any]) -> None:
    result = trained_run["result"]
    adapter = Path(result.adapter_dir)
    saved = json.loads((trained_run["output_dir"] / "train_result.json").read_text())

    assert result.status == "completed" and result.steps == 3
    assert result.final_loss == trained_run["metrics"][-1].loss
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()
    assert not list(adapter.glob("*.bin"))
    assert saved["result"]["status"] == "completed"
    assert saved["config"]["max_steps"] == 3


@pytest.mark.slow
def test_it_changes_the_model_outputs(trained_run: dict[str, Any], model_dir: Path) -> None:
    from peft import PeftModel

    base, tokenizer = store.load_model_and_tokenizer(model_dir, quantization="none")
    tuned = PeftModel.from_pretrained(base, trained_run["result"].adapter_dir).eval()
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )

    with torch.inference_mode():
        tuned_logits = tuned(**inputs).logits
        with tuned.disable_adapter():
            base_logits = tuned(**inputs).logits

    assert set(tuned.peft_config["default"].target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    assert (tuned_logits - base_logits).abs().max() > 1e-2


@pytest.mark.slow
def test_it_stops_cleanly_when_asked(
    model_dir: Path, sample_dataset: Path, tmp_path: Path, tiny_config: Any
) -> None:
    steps: list[int] = []

    result = train(
        tiny_config(model_dir, sample_dataset, tmp_path, max_steps=50),
        TrainHooks(
            on_metrics=lambda m: steps.append(m.step),
            should_stop=lambda: Outcome.CANCELLED if steps else None,
        ),
    )

    assert result.status == "cancelled"
    assert result.steps == 1 and steps == [1]
    assert result.adapter_dir is None
    assert not (tmp_path / "adapter").exists()
    assert json.loads((tmp_path / "train_result.json").read_text())["result"]["steps"] == 1


@pytest.mark.slow
def test_it_is_deterministic_and_normalises_loss_over_accumulation(
    model_dir: Path, sample_dataset: Path, tmp_path: Path, tiny_config: Any
) -> None:
    """Batch 4 equals batch 2 x 2 accumulation (same rows), and reruns repeat exactly.

    In fp32: the two ways pack rows differently, and bf16 rounding would differ by
    ~1% (bf16's own accuracy is tested in test_speed.py).
    """

    def first_losses(**overrides: Any) -> list[float]:
        losses: list[float] = []
        settings = {"max_steps": 1, "lora_dropout": 0.0, "autocast": "float32", **overrides}
        train(
            tiny_config(model_dir, sample_dataset, tmp_path, **settings),
            TrainHooks(on_metrics=lambda m: losses.append(m.loss)),
        )
        return losses

    whole = first_losses(batch_size=4)
    accumulated = first_losses(batch_size=2, grad_accum=2)
    again = first_losses(batch_size=4)

    assert whole == again
    assert accumulated[0] == pytest.approx(whole[0], rel=1e-4)


def test_it_rejects_target_modules_the_model_lacks(model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))

    assert resolve_target_modules(model, "attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    with pytest.raises(ValueError, match="not linear layers of this model: qkv"):
        resolve_target_modules(model, ["qkv", "q_proj"])


def test_it_pads_batches_dynamically_and_masks_padding() -> None:
    examples = [
        {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]},
        {"input_ids": [8, 9], "labels": [IGNORE_INDEX, 9]},
    ]

    batch = collate(examples, pad_id=0)

    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, 9, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert count_trained(batch) == 3


def test_it_shuffles_each_epoch_with_the_seed() -> None:
    examples = [{"input_ids": [i], "labels": [i]} for i in range(6)]

    def order(seed: int) -> list[int]:
        stream = iterate_batches(examples, batch_size=3, seed=seed)
        return [e["input_ids"][0] for _ in range(4) for e in next(stream)[1]]

    first = order(7)

    assert first == order(7)
    assert sorted(first[:6]) == sorted(first[6:]) == list(range(6))
    assert first[:6] != first[6:]


@linux_only
def test_it_reports_the_peak_since_the_last_reset() -> None:
    reset_peak_memory()
    start, _ = memory_mb()
    _touch_and_free(800)
    _, peak = memory_mb()
    assert peak >= start + 500, (start, peak)

    reset_peak_memory()
    current, peak = memory_mb()
    assert peak < current + 150, (current, peak)  # the freed 800 MB no longer counts


@linux_only
def test_it_does_not_inherit_the_peak_of_the_process_that_started_it() -> None:
    # exec copies the parent's high-water mark into the child's ru_maxrss.
    _touch_and_free(1500)
    code = "from training.engine.train.process import memory_mb; print(memory_mb()[1])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    parent_peak = memory_mb()[1]
    child_peak = float(out.stdout.split()[-1])  # its imports: a few hundred MB
    assert child_peak < parent_peak - 1000, (child_peak, parent_peak)
