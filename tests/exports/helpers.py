"""Tiny real models and adapters for export tests (a few MB, made in a second)."""

from __future__ import annotations

import shutil
from pathlib import Path


def write_tiny_llama(folder: Path, tokenizer_dir: Path, hidden: int = 64) -> Path:
    """A loadable Llama with the bundled tokenizer, two query heads per key head, safetensors only
    (rows a whole number of Q8_0/Q4_0 blocks, so every type really quantizes)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=hidden // 32 * 2,
        num_key_value_heads=hidden // 32,
        head_dim=16,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.5 if param.ndim > 1 else 0.1).add_(1.0 if param.ndim == 1 else 0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, folder / name)
    return folder


def write_adapter(base_dir: Path, adapter_dir: Path, scale: float = 1.0, seed: int = 1) -> Path:
    """A LoRA adapter on every linear layer of ``base_dir`` with non-zero B (so merging
    changes the answers), saved as a run saves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules="all-linear",
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    peft_model.save_pretrained(adapter_dir)
    return adapter_dir


def safetensors_dtypes(path: Path) -> set[str]:
    """The dtypes of the tensors stored in a safetensors file (read from its header)."""
    import json

    with open(path, "rb") as file:
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}
