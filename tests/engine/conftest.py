"""Shared, expensive fixtures for the engine tests: convert the model once, train once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The engine must never reach the network; the bundled model is all the tests need.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from training.engine.config import RunConfig
from training.engine.data import samples


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Engine tests compare runs for exact equality (a resume against a straight run, a
    seed against itself): with the thread count following the machine's load, a busy
    machine changed the order of sums between two runs and they parted at step 3. One
    thread is what a busy two-core machine gets anyway. (test_threads and
    test_inference_cores lift it to test the free-core choice.)"""
    before = os.environ.get("SLMLAB_TORCH_THREADS")
    os.environ["SLMLAB_TORCH_THREADS"] = "1"
    yield
    if before is None:
        del os.environ["SLMLAB_TORCH_THREADS"]
    else:
        os.environ["SLMLAB_TORCH_THREADS"] = before


@pytest.fixture(scope="session")
def store_dir(bundled_model_dir: Path) -> Path:
    return bundled_model_dir.parent


@pytest.fixture(scope="session")
def model_dir(bundled_model_dir: Path) -> Path:
    """The bundled SmolLM2-135M in safetensors, from the shared test model store."""
    return bundled_model_dir


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_sample_dataset(tmp_path_factory.mktemp("data") / "sample.jsonl", n=24)


def _tiny_config(model_dir: Path, dataset: Path, output_dir: Path, **overrides: Any) -> RunConfig:
    """A real 4-bit QLoRA run small enough for a test: a few steps at 64 tokens."""
    settings: dict[str, Any] = {
        "max_steps": 3,
        "batch_size": 2,
        "max_seq_len": 64,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        **overrides,
    }
    return RunConfig(
        model_dir=str(model_dir), dataset_path=str(dataset), output_dir=str(output_dir), **settings
    )


@pytest.fixture(scope="session")
def tiny_config() -> Any:
    """Factory: ``tiny_config(model_dir, dataset, output_dir, **overrides)``."""
    return _tiny_config


@pytest.fixture(scope="session")
def trained_run(
    model_dir: Path, sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One completed 3-step run shared by the training and chat tests."""
    from training.engine.train.loop import TrainHooks, train

    output_dir = tmp_path_factory.mktemp("run")
    metrics: list[Any] = []
    logs: list[str] = []
    result = train(
        _tiny_config(model_dir, sample_dataset, output_dir),
        TrainHooks(on_metrics=metrics.append, on_log=logs.append),
    )
    yield {"result": result, "metrics": metrics, "logs": logs, "output_dir": output_dir}
