"""Model store: the bundled GGUF import and safe loading."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from training.engine.models import store


def test_it_finds_the_bundled_gguf() -> None:
    path = store.bundled_gguf_path()

    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_it_imports_the_bundled_model_as_a_safetensors_folder(model_dir: Path) -> None:
    names = {p.name for p in model_dir.iterdir()}
    config = json.loads((model_dir / "config.json").read_text())

    assert {"model.safetensors", "config.json", "tokenizer.json", store.COMPLETE_MARKER} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl", ".gguf")) for name in names)
    assert "quantization_config" not in config
    assert (config["model_type"], config["num_hidden_layers"], config["vocab_size"]) == (
        "llama", 30, 49152,
    )  # fmt: skip


def test_it_keeps_the_chat_template_and_special_tokens(tokenizer: Any) -> None:
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    assert "<|im_start|>user\nhi<|im_end|>" in text
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"


def test_it_returns_at_once_when_already_imported(store_dir: Path, model_dir: Path) -> None:
    before = (model_dir / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()

    again = store.import_bundled_model(store_dir)

    assert again == model_dir
    assert time.perf_counter() - start < 0.5
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == before
    assert not list(store_dir.glob(".*.tmp-*"))


def test_it_never_trusts_a_folder_without_the_marker(tmp_path: Path) -> None:
    half_written = tmp_path / "Model"
    half_written.mkdir()
    (half_written / "config.json").write_text("{}")
    finished = tmp_path / ".Model.tmp-1-abc"
    finished.mkdir()
    (finished / store.COMPLETE_MARKER).write_text("{}")

    assert not store.is_complete(half_written)
    store._publish(finished, half_written)

    assert store.is_complete(half_written)
    assert not (half_written / "config.json").exists()
    assert not finished.exists()


def test_it_refuses_folders_with_pickle_weights(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")

    with pytest.raises(store.ModelStoreError, match=r"pickle files \(pytorch_model.bin\)"):
        store.load_model_and_tokenizer(tmp_path)


def test_it_refuses_folders_without_safetensors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")

    with pytest.raises(store.ModelStoreError, match=r"no \*\.safetensors weights"):
        store.load_model_and_tokenizer(tmp_path)


def test_it_loads_4bit_nf4_and_lists_linear_layers(model_dir: Path) -> None:
    import bitsandbytes as bnb

    model, tokenizer = store.load_model_and_tokenizer(model_dir, quantization="4bit")
    q_proj = model.model.layers[0].self_attn.q_proj

    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.quant_type == "nf4"
    assert store.list_linear_module_names(model) == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]  # fmt: skip
    assert tokenizer.pad_token_id == model.config.pad_token_id
