"""bench/train_throughput.py: its arguments, the GPU mode's code paths (run here on the
CPU), its peaks and rates, and the TRL side on a toy workload."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import train_throughput as bench
from training.engine.train.peak import cpu_peak_flops

needs_trl = pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="no trl")

CPUINFO = "flags\t\t: fpu avx2 fma avx512f {extra}\ncpu MHz\t\t: 2500.000\n"


@needs_trl  # its default sides include TRL (./lab install installs the bench extra)
def test_the_default_run_compares_ours_with_both_baselines_on_the_cpu() -> None:
    args = bench.parse_args([])
    assert args.sides.split(",") == ["ours", "baseline", "trl"]
    assert (args.device, bench.resolve_model(args)) == ("cpu", "bundled")
    cuda = bench.parse_args(["--device", "cuda", "--sides", "ours,trl"])
    assert bench.resolve_model(cuda) == "random-1b"
    assert bench.resolve_model(bench.parse_args(["--device", "cuda", "--tiny"])) == "random-tiny"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sides", "ours,peft"], "--sides: 'ours,peft'"),
        (["--sides", "ours,ours"], "choose distinct sides"),
        (["--modes", "8bit"], "--modes: '8bit'"),
        (["--steps", "1"], "--steps must be at least 2"),
        (["--tiny", "--model", "bundled"], "contradict"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_the_cpu_bf16_peak_doubles_with_avx512_bf16_and_is_amx_s_with_amx() -> None:
    plain = CPUINFO.format(extra="")
    fp32 = cpu_peak_flops(plain, cores=2)
    assert fp32 == 16 * 2 * 2 * 2.5e9 * 2
    assert cpu_peak_flops(plain, cores=2, bf16=True) == fp32  # no native bf16
    assert cpu_peak_flops(CPUINFO.format(extra="avx512_bf16"), cores=2, bf16=True) == 2 * fp32
    amx = CPUINFO.format(extra="avx512_bf16 amx_bf16")
    assert cpu_peak_flops(amx, cores=2, bf16=True) == 1024 * 2.5e9 * 2
    assert cpu_peak_flops(amx, cores=2) == fp32


@needs_trl  # its default sides include TRL (./lab install installs the bench extra)
def test_the_gpu_mode_uses_the_bf16_datasheet_peak_or_the_override() -> None:
    cuda = bench.parse_args(["--device", "cuda"])
    assert bench.peaks(cuda, "NVIDIA H200") == {
        "bf16": (989_000.0, "NVIDIA H200: dense bf16 datasheet figure")
    }
    assert bench.peaks(cuda, "NVIDIA A100-SXM4-80GB")["bf16"][0] == 312_000.0
    assert bench.peaks(cuda, "Some Future GPU") == {}  # unknown: no MFU rather than a guess
    override = bench.parse_args(["--device", "cuda", "--peak-tflops", "500"])
    assert bench.peaks(override, "Some Future GPU")["bf16"][0] == 500_000.0
    cpu = bench.peaks(bench.parse_args(["--peak-gflops", "100"]))
    assert cpu["fp32"] == (100.0, "--peak-gflops") and cpu["bf16"][0] > 0


def test_peak_memory_is_rss_on_the_cpu_and_cuda_allocated_on_a_gpu() -> None:
    label, rss = bench.peak_memory_function("cpu")
    assert label == "peak RSS MB" and rss() > 50  # this test process is at least that big
    label, cuda_peak = bench.peak_memory_function("cuda")
    assert label == "CUDA peak alloc MB" and cuda_peak.__name__ == "cuda_peak"


def test_rates_leave_out_the_warm_up_steps_and_mfu_counts_only_timed_tokens(
    bundled_model_dir: Path,
) -> None:
    r = {
        "step_times": [0.0, 5.0, 6.0, 7.0],
        "step_tokens": [100, 200, 200],
        "tokens": 500,
        "losses": [3.0, 2.0, 1.0],
        "n_params": 1_000_000,
        "attn_l2": 0,
    }
    assert bench.with_rates(dict(r))["tok_s"] == pytest.approx(500 / 7)
    warm = bench.with_rates(dict(r), skip_steps=1)
    assert (warm["tok_s"], warm["train_s"], warm["final_loss"]) == (200.0, 2.0, 2.0)
    assert bench.mfu(warm, bundled_model_dir, peak_gflops=1.0) == pytest.approx(
        6 * 1_000_000 * 400 / 2.0 / 1e9
    )


def test_the_gpu_mode_builds_its_llama_offline_from_a_config(
    bundled_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    folder = bench.build_random_llama(tmp_path / "random-tiny", bundled_model_dir, "random-tiny")
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "llama" and config.hidden_size == 64
    assert config.vocab_size == len(AutoTokenizer.from_pretrained(bundled_model_dir))
    assert AutoTokenizer.from_pretrained(folder).get_vocab() == (
        AutoTokenizer.from_pretrained(bundled_model_dir).get_vocab()
    )
    assert bench.build_random_llama(folder, bundled_model_dir, "random-tiny") == folder  # reused
    shape = bench.RANDOM_LLAMAS["random-1b"]
    d, ff, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = shape["num_key_value_heads"] * d // shape["num_attention_heads"]
    params = layers * (2 * d * d + 2 * d * kv + 3 * d * ff) + config.vocab_size * d
    assert 1.0e9 < params < 1.2e9  # "about 1B"


@needs_trl
@pytest.mark.slow
def test_the_trl_side_trains_the_same_examples_as_ours_to_the_same_losses(
    bundled_model_dir: Path, tmp_path: Path
) -> None:
    """Both workers, in this process, on a tiny Llama for two steps of four examples."""
    model = bench.build_random_llama(tmp_path / "m", bundled_model_dir, "random-tiny")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    bench.write_dataset(tmp_path / "train.jsonl", 12, tokenizer, seed=1)
    bench.write_dataset(tmp_path / "eval.jsonl", 2, tokenizer, seed=2)
    results = {}
    for side in ("trl", "ours"):
        args = bench.parse_args(
            ["--worker", side, "--mode", "none", "--data", str(tmp_path / "train.jsonl"),
             "--eval-data", str(tmp_path / "eval.jsonl"), "--out", str(tmp_path / side),
             "--model-dir", str(model), "--steps", "2", "--batch-size", "4",
             "--max-seq-len", "128"]
        )  # fmt: skip
        results[side] = bench.with_rates(bench.worker(args))

    trl, ours = results["trl"], results["ours"]
    assert trl["tokens"] == trl["expected_tokens"] == ours["tokens"]
    assert len(trl["losses"]) == 2 and trl["lora_params"] == ours["lora_params"]
    assert trl["log"][0].startswith("trl: bf16 ")
    for a, b in zip(trl["losses"], ours["losses"], strict=True):
        assert a == pytest.approx(b, rel=1e-3)  # both bf16 autocast or both fp32
    assert trl["eval_loss"] == pytest.approx(ours["eval_loss"], rel=1e-3)
    assert (tmp_path / "trl" / "adapter" / "adapter_model.safetensors").exists()
    assert trl["tok_s"] > 0 and trl["peak_mb"] > 0


def test_the_gpu_mode_says_so_on_a_machine_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="--device cuda: this machine has no CUDA device"):
        bench.main(["--device", "cuda", "--tiny", "--sides", "ours"])


@needs_trl  # its default sides include TRL (./lab install installs the bench extra)
def test_trl_on_the_cpu_autocasts_bf16_exactly_where_the_engine_does() -> None:
    import torch

    from training.engine.train.speed import cpu_has_fast_bf16

    best = bench.trl_settings("cpu")
    assert best == {
        "bf16": cpu_has_fast_bf16(),
        "dtype": torch.float32,  # fp32 weights under bf16 autocast, as ours on a CPU
        "attn_implementation": "sdpa",
        "use_liger_kernel": False,
    }
    args = bench.parse_args(["--device", "cuda"])
    assert bench.hf_arguments(args, Path("o"))["use_cpu"] is False
    assert bench.hf_arguments(bench.parse_args([]), Path("o"))["use_cpu"] is True
