import json

import pytest

from tests.factories import make_base_model, make_project

SMOLLM2_135M = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "dtype": "float32",
    "max_position_embeddings": 8192,
}


@pytest.fixture
def model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2_135M))
    return make_base_model(path=str(tmp_path))


@pytest.fixture
def project(user):
    return make_project(owner=user)
