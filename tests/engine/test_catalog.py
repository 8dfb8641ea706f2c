"""The curated catalog and parameter counts from architecture numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors import safe_open

from training.engine.models.arch import arch_from_config_dict, param_count, quantizable_param_count
from training.engine.models.catalog import CATALOG, DEFAULT_MODEL_KEY, get_model

BUNDLED_PARAMS = 134_515_008

# Published parameter counts (model cards / hub), in millions.
PUBLISHED_MILLIONS = {
    "smollm2-135m": 135,
    "smollm2-360m": 362,
    "smollm2-1.7b": 1711,
    "qwen2.5-0.5b": 494,
    "qwen2.5-1.5b": 1544,
    "tinyllama-1.1b": 1100,
    "llama3.2-1b": 1236,
    "phi3-mini": 3821,
    "gemma2-2b": 2614,
}


def test_it_counts_the_bundled_models_parameters_exactly(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    stored = 0
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            stored += math.prod(f.get_slice(name).get_shape())
    # The LM head is tied to the embeddings, so the file holds every parameter once.
    assert stored == BUNDLED_PARAMS
    assert param_count(arch_from_config_dict(config)) == BUNDLED_PARAMS


def test_it_matches_the_bundled_models_config(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    assert get_model(DEFAULT_MODEL_KEY).arch == arch_from_config_dict(config)


def test_it_lists_the_curated_models_with_their_published_sizes() -> None:
    assert [m.key for m in CATALOG] == list(PUBLISHED_MILLIONS)
    for model in CATALOG:
        assert model.params / 1e6 == pytest.approx(PUBLISHED_MILLIONS[model.key], rel=0.01)
        assert model.repo_id.count("/") == 1
        assert model.licence and model.context_length >= 2048
        assert model.disk_bytes == model.params * 2  # all published in bf16


def test_it_quantizes_only_the_decoder_linear_layers() -> None:
    arch = get_model("qwen2.5-0.5b").arch
    embeddings = arch.vocab_size * arch.hidden_size
    assert quantizable_param_count(arch) < param_count(arch) - embeddings


def test_it_reads_transformers_defaults_from_a_minimal_config() -> None:
    arch = arch_from_config_dict(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 100,
        }
    )
    assert arch.head_dim == 16
    assert arch.num_key_value_heads == 4
    assert arch.tie_word_embeddings


def test_it_rejects_a_config_without_architecture_values() -> None:
    with pytest.raises(ValueError, match="hidden_size"):
        arch_from_config_dict({"model_type": "llama"})


def test_it_names_the_known_models_for_an_unknown_key() -> None:
    with pytest.raises(KeyError, match="smollm2-135m"):
        get_model("gpt-5")
