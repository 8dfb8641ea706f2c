"""Fresh LoRA adapters on a (possibly quantized) base model."""

from __future__ import annotations

from typing import Any

import torch

from training.engine.config import ATTENTION_MODULES, ConfigError, RunConfig
from training.engine.models import store
from training.engine.train import speed


def resolve_target_modules(model: torch.nn.Module, target: str | list[str]) -> list[str]:
    """Module names for a preset or explicit list, checked against the model's linear layers."""
    available = store.list_linear_module_names(model)
    if target == "all-linear":
        return available
    names = ATTENTION_MODULES if target == "attention" else list(target)
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(
            {
                "target_modules": f"not linear layers of this model: {', '.join(missing)} "
                f"(available: {', '.join(available)})"
            }
        )
    return names


def attach_lora(model: Any, config: RunConfig) -> Any:
    """Prepare a (possibly quantized) model and wrap it with fresh LoRA adapters.

    The adapters get the engine's speed optimisations (:mod:`.speed`).
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.quantization != "none":
        # Casts norms/embeddings to fp32 and freezes the base: needed for stable k-bit training.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
        keep_4bit_layout_for_training(model)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    targets = resolve_target_modules(model, config.target_modules)
    if config.lora_embeddings:
        targets = [*targets, *embedding_module_names(model)]
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        use_rslora=config.use_rslora,
        use_dora=config.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return speed.speed_up(get_peft_model(model, lora), config)


def embedding_module_names(model: Any) -> list[str]:
    """The leaf names of the input embeddings and the LM head (LoRA on both)."""
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]
    names = []
    for full_name, module in model.named_modules():
        if any(module is w for w in wanted if w is not None):
            leaf = full_name.rsplit(".", 1)[-1]
            if leaf not in names:
                names.append(leaf)
    return names


def keep_4bit_layout_for_training(model: Any) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference during an evaluation.

    On a CPU with avx512_bf16, a ``Linear4bit`` in eval mode under ``no_grad`` rewrites
    its weight once into an inference-only layout, and every later forward then takes
    a kernel without a backward: the training steps after the first validation loss
    would silently stop sending gradients through the base layers.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
