"""A randomly initialised transformers model from a design (imports torch)."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from training.engine.design.spec import Design, to_transformers_config


def build_model(
    design: Design, *, seed: int = 0, bos_id: int = 1, eos_id: int = 2
) -> PreTrainedModel:
    """The design as a transformers model with random weights (fp32)."""
    config_dict = to_transformers_config(design, bos_id=bos_id, eos_id=eos_id)
    model_type = config_dict.pop("model_type")
    config_dict.pop("architectures")
    config = AutoConfig.for_model(model_type, **config_dict)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)
