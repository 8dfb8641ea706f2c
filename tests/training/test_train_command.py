import json

import pytest
from django.core.management import CommandError, call_command

from training.engine.config import RunConfig
from training.engine.data.samples import write_sample_dataset


def test_it_reports_a_bad_config_file_by_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model_dir: m\ndataset_path: d\noutput_dir: o\nlora_r: 500\n")
    with pytest.raises(CommandError, match="lora_r"):
        call_command("train", config=str(path))


def test_it_reports_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model_dir: m\ndataset_path: d\noutput_dir: o\nlearning_rat: 0.1\n")
    with pytest.raises(CommandError, match="learning_rat"):
        call_command("train", config=str(path))


def test_it_reports_a_bad_dataset_with_its_line(tmp_path, bundled_model_dir):
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n')
    config = RunConfig(
        model_dir=str(bundled_model_dir), dataset_path=str(data), output_dir=str(tmp_path / "out")
    )
    config.write_yaml(tmp_path / "run.yaml")
    with pytest.raises(CommandError, match="line 2"):
        call_command("train", config=str(tmp_path / "run.yaml"))


@pytest.mark.slow
def test_the_run_yaml_drives_a_real_training(tmp_path, bundled_model_dir, capsys):
    config = RunConfig(
        model_dir=str(bundled_model_dir),
        dataset_path=str(write_sample_dataset(tmp_path / "data.jsonl", n=8)),
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        batch_size=2,
        max_seq_len=64,
    )
    config.write_yaml(tmp_path / "run.yaml")
    call_command("train", config=str(tmp_path / "run.yaml"))
    out = capsys.readouterr().out
    assert "step 2/2" in out
    result = json.loads(out[out.index("{") :])
    assert result["status"] == "completed" and result["steps"] == 2
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()


def test_it_reads_every_advanced_setting_from_run_yaml(tmp_path, bundled_model_dir):
    # Accepted settings reach the dataset check (which fails here), a bad one is named.
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "a"}\n')
    config = RunConfig(
        model_dir=str(bundled_model_dir),
        dataset_path=str(data),
        output_dir=str(tmp_path / "out"),
        optimizer="adamw8bit",
        lr_scheduler="constant_with_warmup",
        warmup_steps=2,
        weight_decay=0.01,
        max_grad_norm=0.5,
        gradient_checkpointing=True,
        autocast="float32",
        compute_dtype="float32",
        train_on_prompt=True,
        use_rslora=True,
        use_dora=True,
        lora_embeddings=True,
    )
    config.write_yaml(tmp_path / "run.yaml")
    with pytest.raises(CommandError, match="line 1"):
        call_command("train", config=str(tmp_path / "run.yaml"))
    text = (tmp_path / "run.yaml").read_text().replace("adamw8bit", "adamw4bit")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(CommandError, match="optimizer: expected one of adamw, adamw8bit"):
        call_command("train", config=str(tmp_path / "bad.yaml"))
