"""Run configuration: validation and the YAML file that drives `manage.py train`."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.engine.config import ConfigError, RunConfig


def config(**overrides: object) -> RunConfig:
    return RunConfig(
        model_dir="models/smol", dataset_path="data.jsonl", output_dir="out", **overrides
    )


def errors_of(run_config: RunConfig) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        run_config.validate()
    return info.value.errors


def test_it_accepts_the_defaults() -> None:
    run_config = config()

    run_config.validate()

    assert (run_config.quantization, run_config.quant_type, run_config.lora_r) == ("4bit", "nf4", 8)
    assert run_config.target_modules == "all-linear"


def test_it_reports_every_bad_field_by_name() -> None:
    bad = config(
        quantization="3bit",
        lora_r=2,
        lora_dropout=1.0,
        learning_rate=0.0,
        batch_size=0,
        lr_scheduler="warm",
        target_modules="mlp",
        warmup_ratio=-0.1,
        max_steps=-1,
    )

    errors = errors_of(bad)

    assert set(errors) == {
        "quantization", "lora_r", "lora_dropout", "learning_rate", "batch_size",
        "lr_scheduler", "target_modules", "warmup_ratio", "max_steps",
    }  # fmt: skip
    assert errors["lora_r"] == "must be 4-64"
    assert errors["quantization"] == "expected one of 4bit, 8bit, none"


def test_it_rejects_wrong_types() -> None:
    errors = errors_of(config(lora_r=8.5, double_quant="yes", epochs=True, target_modules=[1]))

    assert errors == {
        "lora_r": "expected a whole number",
        "double_quant": "expected true or false",
        "epochs": "expected a whole number",
        "target_modules": "expected a preset name or a list of module names",
    }


def test_it_accepts_presets_and_explicit_module_lists() -> None:
    config(target_modules="attention").validate()
    config(target_modules=["q_proj", "v_proj"]).validate()

    assert errors_of(config(target_modules=[])) == {"target_modules": "must not be an empty list"}


def test_it_round_trips_through_yaml(tmp_path: Path) -> None:
    original = config(target_modules=["q_proj", "v_proj"], learning_rate=5e-4, max_steps=40)
    path = tmp_path / "run.yaml"

    original.write_yaml(path)

    assert RunConfig.read_yaml(path) == original


def test_it_reads_hand_written_yaml_with_yaml_1_1_quirks() -> None:
    text = (
        "model_dir: m\ndataset_path: d.jsonl\noutput_dir: o\nlearning_rate: 2e-4\nlora_dropout: 0\n"
    )

    loaded = RunConfig.from_yaml(text)

    assert loaded.learning_rate == 2e-4
    assert loaded.lora_dropout == 0.0


def test_it_rejects_unknown_and_missing_keys_clearly() -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("model_dir: m\ndataset_path: d\nlearnig_rate: 0.1\n")

    assert info.value.errors["output_dir"] == "required"
    assert info.value.errors["learnig_rate"].startswith("unknown setting (expected one of:")
    assert "learning_rate" in info.value.errors["learnig_rate"]


def test_it_rejects_yaml_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("- a\n- b\n")

    assert info.value.errors == {"config": "expected a mapping of setting names to values"}


def test_it_validates_values_read_from_yaml() -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("model_dir: m\ndataset_path: d\noutput_dir: o\nlora_r: 128\n")

    assert info.value.errors == {"lora_r": "must be 4-64"}


def test_it_resolves_auto_compute_dtype_per_device() -> None:
    auto = config()

    assert auto.resolved_compute_dtype(cuda_available=False, bf16_supported=False) == "float32"
    assert auto.resolved_compute_dtype(cuda_available=True, bf16_supported=True) == "bfloat16"
    assert auto.resolved_compute_dtype(cuda_available=True, bf16_supported=False) == "float32"
    fixed = config(compute_dtype="float16")
    assert fixed.resolved_compute_dtype(cuda_available=True, bf16_supported=True) == "float16"


def test_it_stores_paths_as_strings() -> None:
    run_config = RunConfig(model_dir=Path("m"), dataset_path=Path("d"), output_dir=Path("o"))

    assert run_config.model_dir == "m" and "m" in run_config.to_yaml()


def test_warmup_steps_replace_the_warmup_ratio() -> None:
    assert config(warmup_ratio=0.1).warmup_for(100) == 10
    assert config(warmup_ratio=0.1, warmup_steps=3).warmup_for(100) == 3
    assert config(warmup_steps=500).warmup_for(100) == 100
    with pytest.raises(ConfigError) as info:
        config(warmup_steps=-1).validate()
    assert set(info.value.errors) == {"warmup_steps"}


def test_the_advanced_choices_are_validated() -> None:
    for name, good in [
        ("optimizer", "paged_adamw32bit"),
        ("lr_scheduler", "constant_with_warmup"),
        ("autocast", "float16"),
    ]:
        config(**{name: good}).validate()
        with pytest.raises(ConfigError) as info:
            config(**{name: "nope"}).validate()
        assert set(info.value.errors) == {name}
    for flag in ("use_rslora", "use_dora", "lora_embeddings"):
        config(**{flag: True}).validate()
        with pytest.raises(ConfigError):
            config(**{flag: "yes"}).validate()


def test_auto_compute_dtype_follows_the_precision_on_cuda() -> None:
    assert config(autocast="float16").resolved_compute_dtype(True, True) == "float16"
    assert config(autocast="float32").resolved_compute_dtype(True, True) == "float32"
    assert config(autocast="float16").resolved_compute_dtype(False, False) == "float32"
