"""The design engine: validation, the transformers mapping, presets, exact counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from training.engine.design import counts, spec
from training.engine.design.build import build_model
from training.engine.design.spec import Design, Layer


def small(**changes) -> Design:
    base = spec.llama_tiny()
    base = replace(base, vocab_size=300, hidden_size=64, context_length=64)
    base.layers = [Layer("rmsnorm", 4, 2, "swiglu", 96) for _ in range(2)]
    return replace(base, **changes)


def gpt2_small(**changes) -> Design:
    base = replace(spec.gpt2_tiny(), vocab_size=300, hidden_size=64, context_length=64)
    base.layers = [Layer("layernorm", 4, 4, "gelu", 128) for _ in range(2)]
    return replace(base, **changes)


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("make", [small, gpt2_small], ids=["llama-gqa", "gpt2"])
def test_it_counts_exactly_the_parameters_transformers_instantiates(make, tied):
    design = make(tie_embeddings=tied)
    model = build_model(design)
    assert counts.total_parameters(design) == numel(model)
    assert model.config.tie_word_embeddings is tied


def test_it_counts_every_block_as_the_model_holds_it():
    design = small(tie_embeddings=False)
    model = build_model(design)
    blocks = {b.name: b.parameters for b in counts.block_counts(design)}
    assert blocks["embedding"] == model.model.embed_tokens.weight.numel()
    assert blocks["layer 1"] == numel(model.model.layers[0])
    assert blocks["final norm"] == numel(model.model.norm)
    assert blocks["lm head"] == model.lm_head.weight.numel()


def test_the_presets_are_valid_and_map_onto_llama_and_gpt2():
    assert spec.validate(spec.llama_tiny()) == {}
    assert spec.validate(spec.gpt2_tiny()) == {}
    assert spec.to_transformers_config(spec.llama_tiny())["model_type"] == "llama"
    assert spec.to_transformers_config(spec.gpt2_tiny())["model_type"] == "gpt2"
    assert 2_000_000 < counts.total_parameters(spec.llama_tiny()) < 10_000_000


def test_a_store_model_preset_has_its_architecture_and_parameter_count(bundled_model_dir: Path):
    from training.engine.models.arch import read_model_facts

    design = spec.from_model_dir(bundled_model_dir)
    assert spec.validate(design) == {}
    assert counts.total_parameters(design) == read_model_facts(bundled_model_dir).parameters
    assert design.first.kv_heads == 3 and len(design.layers) == 30


@pytest.mark.parametrize(
    ("design", "field", "words"),
    [
        (small(hidden_size=66), "layers.0.heads", "not divisible"),
        (small(layers=[Layer("rmsnorm", 4, 3, "swiglu", 96)]), "layers.0.kv_heads", "divisible"),
        (
            small(hidden_size=72, layers=[Layer("rmsnorm", 8, 8, "swiglu", 96)]),
            "layers.0.heads",
            "odd",
        ),
        (small(positions="learned"), "positions", "Llama"),
        (
            gpt2_small(layers=[Layer("layernorm", 4, 2, "gelu", 128)]),
            "layers.0.kv_heads",
            "grouped-query",
        ),
        (small(layers=[Layer(), Layer(heads=2, kv_heads=2)]), "layers.1.heads", "same shape"),
        (small(layers=[]), "layers", "1 to"),
        (small(dropout=1.5), "dropout", "share"),
    ],
)
def test_it_names_the_field_at_fault(design, field, words):
    errors = spec.validate(design)
    assert field in errors and words in errors[field], errors


def test_it_refuses_a_vocabulary_smaller_than_the_tokenizer_and_a_too_long_context():
    errors = spec.validate(small(), tokenizer_vocab=500, sequence_length=128)
    assert "tokenizer's 500" in errors["vocab_size"]
    assert "exceed the 64 positions" in errors["context_length"]


def test_it_refuses_a_design_no_live_worker_can_train():
    errors = counts.check(
        spec.llama_tiny(), batch_size=8, sequence_length=256, memory_limit_bytes=10 * 2**20
    )
    assert "more than the largest live worker" in errors["layers"]
    assert (
        counts.check(
            spec.llama_tiny(), batch_size=8, sequence_length=256, memory_limit_bytes=8 * 2**30
        )
        == {}
    )


def test_flops_and_memory_grow_with_the_sequence_and_batch():
    design = spec.llama_tiny()
    assert counts.training_flops_per_token(design, 512) > counts.training_flops_per_token(
        design, 64
    )
    n = counts.total_parameters(design)
    assert counts.training_flops_per_token(design, 1) >= 6 * (n - design.vocab_size * 256)
    assert counts.training_memory_bytes(design, 8, 256) > counts.training_memory_bytes(
        design, 1, 256
    )
    assert counts.training_memory_bytes(design, 1, 1) > 16 * n


def test_a_design_round_trips_through_a_dict_and_refuses_unknown_settings():
    design = small()
    assert Design.from_dict(design.to_dict()) == design
    with pytest.raises(ValueError, match="unknown"):
        Design.from_dict({"width": 3})
    with pytest.raises(ValueError, match="unknown"):
        Design.from_dict({"layers": [{"wings": 2}]})


def test_the_counting_modules_import_no_torch():
    import subprocess
    import sys

    script = (
        "import sys; import training.engine.design.counts, training.engine.design.spec;"
        "print('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
