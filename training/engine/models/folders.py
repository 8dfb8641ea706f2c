"""What a model folder may hold: safetensors weights, configs and tokenizer files only.

Pickle checkpoints can run arbitrary code when loaded, and model code is never run
(``trust_remote_code`` stays off), so neither is ever fetched, copied or loaded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# The files worth fetching from the Hub or copying from a local folder.
SAFE_SUFFIXES = frozenset({".safetensors", ".json", ".jinja", ".txt", ".model", ".tiktoken"})


class ModelStoreError(Exception):
    """A model folder is missing, unsafe or unusable."""


def check_safe_model_dir(model_dir: Path) -> None:
    """Raise :class:`ModelStoreError` unless ``model_dir`` holds safetensors and no pickles."""
    _check_safe_dir(Path(model_dir), "model")


def check_safe_adapter_dir(adapter_dir: Path) -> None:
    """Same rule for a LoRA adapter folder (``adapter_model.safetensors``)."""
    _check_safe_dir(Path(adapter_dir), "adapter")
    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ModelStoreError(f"no adapter_config.json in {adapter_dir}")


def _check_safe_dir(model_dir: Path, kind: str) -> None:
    if not model_dir.is_dir():
        raise ModelStoreError(f"{kind} folder not found: {model_dir}")
    pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ModelStoreError(
            f"refusing to load {model_dir}: it contains pickle files ({', '.join(pickles)}), "
            "which can run arbitrary code; convert the weights to safetensors first"
        )
    if not any(model_dir.glob("*.safetensors")):
        raise ModelStoreError(f"no *.safetensors weights in {model_dir}")


def folder_bytes(folder: Path) -> int:
    """Bytes under ``folder``, partial downloads included (they grow as data arrives)."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            # A file renamed from .incomplete between walk and stat is counted next time.
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total
