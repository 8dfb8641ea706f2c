"""A tiny real LoRA adapter for a run, with random (non-zero) weights."""

from __future__ import annotations

from pathlib import Path


def write_random_adapter(model_dir: Path, out: Path, seed: int = 1) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from training.engine.models import store

    torch.manual_seed(seed)
    model, _ = store.load_model_and_tokenizer(model_dir, quantization="none", device="cpu")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out
