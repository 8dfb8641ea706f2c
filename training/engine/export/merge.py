"""A run's LoRA adapter merged into the full-precision base weights, saved as safetensors.

The base is always loaded unquantized (float32), whatever the run trained on: a
4-bit-trained adapter learned corrections to the quantized weights, and it is merged
onto the original ones (the usual QLoRA deployment; the answers are checked in
:mod:`.verify`). The folder holds what ``from_pretrained`` needs: config, weights,
tokenizer with the chat template the run trained with, and a generation config whose
end-of-sequence token is the model's end of turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from training.engine.export.chat_template import template_for_run
from training.engine.models import store
from training.engine.models.folders import check_safe_adapter_dir

MergeDtype = Literal["bfloat16", "float16", "float32"]
DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}


def load_adapter_on_base(base_dir: Path, adapter_dir: Path) -> tuple[Any, Any]:
    """(the adapter on the float32 base, on the CPU; its tokenizer)."""
    from peft import PeftModel

    check_safe_adapter_dir(Path(adapter_dir))
    model, tokenizer = store.load_model_and_tokenizer(
        Path(base_dir), quantization="none", compute_dtype="float32", device="cpu"
    )
    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    return model.eval(), tokenizer


def load_for_export(base_dir: Path, adapter_dir: Path | None) -> tuple[Any, Any]:
    """(the model to export at float32 on the CPU, its tokenizer): the adapter merged
    into its base, or, with no adapter (a model pretrained in the lab), the model itself."""
    if adapter_dir is None:
        model, tokenizer = store.load_model_and_tokenizer(
            Path(base_dir), quantization="none", compute_dtype="float32", device="cpu"
        )
        return model.eval(), tokenizer
    model, tokenizer = load_adapter_on_base(base_dir, adapter_dir)
    return merge(model), tokenizer


def merge(peft_model: Any) -> Any:
    """The adapter folded into the base weights (float32; the PEFT wrapper is gone)."""
    return peft_model.merge_and_unload().eval()


def save_merged(
    merged: Any,
    tokenizer: Any,
    out_dir: Path,
    dtype: MergeDtype = "bfloat16",
    template: str = "model",
    custom_template: str = "",
) -> Path:
    """Write ``merged`` in ``dtype`` to ``out_dir`` (created; must not exist)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True)
    tokenizer.chat_template = template_for_run(tokenizer, template, custom_template)
    generation = merged.generation_config
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    generation.bos_token_id = tokenizer.bos_token_id
    original = next(merged.parameters()).dtype
    merged.to(DTYPES[dtype])
    try:
        merged.save_pretrained(out_dir, safe_serialization=True)
    finally:
        merged.to(original)
    tokenizer.save_pretrained(out_dir)
    return out_dir
