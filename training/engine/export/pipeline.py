"""Exports from a run's adapter, each verified before it is returned (see :mod:`.verify`).

Every function writes into a folder it is given (the caller's temporary folder) and
returns the verification figures; a failed check raises ``VerificationFailed``. The
caller publishes the folder only after that, so nothing unverified is ever offered.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.engine.export import merge, verify
from training.engine.export.chat_template import chat_pieces
from training.engine.export.gguf_writer import write_gguf
from training.engine.export.modelfile import modelfile
from training.engine.export.support import gguf_config
from training.engine.models.folders import check_safe_adapter_dir

Progress = Callable[[float, str], None]
GGUF_TYPES = ("f16", "q8_0", "q4_0", "q4_k_m")


def _quiet(fraction: float, stage: str) -> None:
    pass


def export_adapter(adapter_dir: Path, out_dir: Path, progress: Progress = _quiet) -> dict:
    """The adapter's safetensors and config, copied (the adapter itself is the export)."""
    check_safe_adapter_dir(Path(adapter_dir))
    progress(0.2, "copying the adapter")
    shutil.copytree(adapter_dir, out_dir)
    config = (Path(out_dir) / "adapter_config.json").read_text(encoding="utf-8")
    progress(1.0, "adapter copied")
    return {"kind": "adapter", "passed": bool(config), "files": sorted(_names(out_dir))}


def _names(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()]


def export_merged(
    base_dir: Path,
    adapter_dir: Path | None,
    out_dir: Path,
    dtype: merge.MergeDtype = "bfloat16",
    template: str = "model",
    custom_template: str = "",
    progress: Progress = _quiet,
) -> dict:
    """Merged safetensors in ``out_dir``; reloaded, they answer like the adapter on its base
    (``adapter_dir`` None: a model pretrained in the lab, its own weights, answering like
    the model the run saved)."""
    if adapter_dir is None:
        progress(0.05, "loading the pretrained model at full precision")
        model, tokenizer = merge.load_for_export(base_dir, None)
        progress(0.2, "answering the check prompts with the pretrained model")
        reference = verify.greedy_answers(model, tokenizer, template, custom_template)
        merged = model
    else:
        progress(0.05, "loading the base model at full precision with the adapter")
        model, tokenizer = merge.load_adapter_on_base(base_dir, adapter_dir)
        progress(0.2, "answering the check prompts with the adapter on its base")
        reference = verify.greedy_answers(model, tokenizer, template, custom_template)
        progress(0.4, "merging the adapter into the weights")
        merged = merge.merge(model)
    # Half precision rounds the weights: the check then allows near ties (verify_merged).
    reference_text = None if dtype == "float32" else verify.text_log_probs(merged, tokenizer)
    progress(0.5, "saving safetensors")
    merge.save_merged(merged, tokenizer, out_dir, dtype, template, custom_template)
    del merged, model
    progress(0.7, "reloading the merged model and answering the check prompts")
    result = verify.verify_merged(reference, out_dir, template, custom_template, reference_text)
    progress(1.0, "merged model verified")
    return {**result, "dtype": dtype}


def export_gguf(
    base_dir: Path,
    adapter_dir: Path | None,
    out_dir: Path,
    gguf_type: str,
    name: str,
    template: str = "model",
    custom_template: str = "",
    progress: Progress = _quiet,
) -> dict:
    """``out_dir/<name>.gguf`` and its ``Modelfile``, verified in llama.cpp.

    ``adapter_dir`` None: a model pretrained in the lab, written as it is. Such a model
    was never taught to end a chat turn, so its chat through the stored template is shown
    but not required to stop (a fine-tune of it is held to the stop like any run)."""
    from training.engine.export import llama

    if gguf_type not in GGUF_TYPES:
        raise ValueError(f"unknown GGUF type {gguf_type!r}: expected one of {GGUF_TYPES}")
    gguf_config(base_dir)
    if not llama.available():
        raise llama.LlamaCppMissing(
            "llama.cpp (llama-cpp-python) is not installed on the worker, so a GGUF "
            "export cannot be verified; an operator installs the gguf-verify extra"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True)
    work = out_dir / ".work"
    try:
        progress(0.03, "loading the model at full precision (with its adapter merged)")
        merged, tokenizer = merge.load_for_export(base_dir, adapter_dir)
        progress(0.15, "answering the check prompts with the merged model")
        reference = verify.greedy_answers(merged, tokenizer, template, custom_template)
        reference_text = verify.text_log_probs(merged, tokenizer)
        merged_dir = merge.save_merged(
            merged, tokenizer, work / "merged", "float32", template, custom_template
        )
        del merged

        def writing(fraction: float, stage: str) -> None:
            progress(0.3 + 0.4 * fraction, stage)

        target = out_dir / f"{name}.gguf"
        if gguf_type == "q4_k_m":
            f16 = write_gguf(merged_dir, work / "f16.gguf", "f16", name, writing)
            progress(0.72, "quantizing to Q4_K_M with llama.cpp")
            llama.quantize(f16, target, "q4_k_m")
        else:
            write_gguf(merged_dir, target, gguf_type, name, writing)  # type: ignore[arg-type]
        progress(0.8, "loading the GGUF in llama.cpp and comparing answers")
        result = verify.verify_gguf(
            target,
            gguf_type,
            reference,
            reference_text,
            tokenizer,
            template,
            custom_template,
            chat_must_stop=adapter_dir is not None,
        )
        pieces = chat_pieces(tokenizer, tokenizer.chat_template, single_turn=template != "model")
        (out_dir / "Modelfile").write_text(
            modelfile(target.name, pieces, [tokenizer.eos_token]), encoding="utf-8"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(1.0, "GGUF verified")
    return result


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def describe(result: dict[str, Any]) -> str:
    """One line for the page: what the verification found."""
    if result.get("kind") == "merged":
        return f"{len(result['prompts'])}/{len(result['prompts'])} answers equal"
    if result.get("kind") == "gguf":
        equal = sum(1 for r in result["prompts"] if r["equal"])
        return (
            f"{equal}/{len(result['prompts'])} answers match, next-token agreement "
            f"{result['token_agreement']:.0%}, mean KL {result['mean_kl']:.4f}"
        )
    return "adapter files copied"
