"""Training-speed optimisations applied to every run (see README, "Training speed").

- bf16 autocast on CPUs with native bf16 matmuls (avx512_bf16/AMX): the frozen
  base weights are stored in bf16 once (or 4-bit layers dequantize straight to
  bf16), so every step skips re-casting them; the LoRA branch (and so its
  gradients), the optimizer, norms, the residual stream and the loss stay fp32.
- A fused LoRA forward: ``base(x) + scaling * B(A(dropout(x)))`` as one ``addmm``
  on the base output (no separate scaling multiply or add over the large output),
  with ``x`` cast once for both branches.
- LoRA dropout masks drawn by numpy's PCG64 generator (seeded from torch's, so a
  seeded run is reproducible): the same Bernoulli(1 - p) masks in distribution,
  independent per module as in peft, at a fraction of torch's CPU sampling cost.
- CUDA only, each when its package is installed (neither is a dependency): packed rows
  through flash-attention 2's varlen kernel (transformers reads the position resets
  as sequence boundaries), and the LM head fused with the cross-entropy
  (liger-kernel), which never materialises the logits. CPU runs are unchanged.

Every optimisation is checked against the unoptimised path in
``tests/engine/test_speed.py``.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.engine.config import ConfigError, RunConfig, uses_bf16_autocast

AUTOCAST_ATTR = "slmlab_autocast_dtype"
HEAD_LOSS_ATTR = "slmlab_head_loss"
# (lm_head weight, hidden states, targets) -> summed cross-entropy
HeadLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def attention_implementation(device: str, compute_dtype: str) -> str | None:
    """flash-attention 2 on CUDA in bf16/fp16 when ``flash_attn`` is installed (packed
    rows then run as variable-length sequences, without a mask); else None, which is
    transformers' default, SDPA (packed rows get a block-diagonal causal mask)."""
    if device == "cuda" and compute_dtype in ("bfloat16", "float16") and installed("flash_attn"):
        return "flash_attention_2"
    return None


def fused_head_loss(device: str) -> HeadLoss | None:
    """liger-kernel's fused linear cross-entropy on CUDA when installed, else None."""
    if device != "cuda" or not installed("liger_kernel"):
        return None
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    return LigerFusedLinearCrossEntropyLoss(reduction="sum")


def plain_head_loss(weight: torch.Tensor, hidden: torch.Tensor, targets: torch.Tensor) -> Any:
    """What :func:`fused_head_loss` computes, unfused: the LM head, then fp32 cross-entropy."""
    return F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")


def head_loss_applies(model: Any) -> bool:
    """Whether the LM head is a plain bias-free linear layer over the decoder's last
    hidden state (no LoRA on it, no logit soft-capping or scaling), so the fused loss
    computes exactly what the model's own forward would."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    config = getattr(lm, "config", None)
    return (
        type(head) is torch.nn.Linear
        and head.bias is None
        and hasattr(lm, "get_decoder")
        and getattr(config, "final_logit_softcapping", None) is None
        and getattr(config, "logit_scale", None) is None
        and getattr(config, "logits_scaling", None) is None
    )


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively on this CPU (avx512_bf16 or AMX)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def resolve_autocast(config: RunConfig, device: str) -> torch.dtype | None:
    """The autocast dtype for the forward pass, or None for plain fp32.

    "auto" turns bf16 autocast on only for an fp32 model on a CPU with native bf16;
    CUDA runs get bf16 through ``compute_dtype`` instead. "float16" autocasts on CUDA
    and MPS (the loop scales the loss on CUDA); CPUs have no fast fp16 and refuse it.
    """
    if config.autocast == "float16":
        if device == "cpu":
            raise ConfigError({"autocast": "CPUs have no fast fp16 matmuls: choose bf16 or fp32"})
        return torch.float16
    compute = config.resolved_compute_dtype(device == "cuda", False)
    cpu_bf16 = device == "cpu" and cpu_has_fast_bf16()
    if not uses_bf16_autocast(config.autocast, config.quantization, compute, device, cpu_bf16):
        return None
    if config.autocast == "bfloat16" and device == "cpu" and not cpu_bf16:
        raise ConfigError({"autocast": "this CPU has no native bfloat16 support"})
    return torch.bfloat16


def autocast_context(model: Any, device_type: str) -> Any:
    """The autocast context :func:`speed_up` chose for ``model`` (a no-op when none)."""
    dtype = getattr(model, AUTOCAST_ATTR, None)
    if dtype is None:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=dtype)


def speed_up(model: Any, config: RunConfig, seed: int | None = None) -> Any:
    """Apply the optimisations to a fresh peft LoRA model, in place; returns it."""
    device = next(model.parameters()).device.type
    dtype = resolve_autocast(config, device)
    setattr(model, AUTOCAST_ATTR, dtype)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    dropout = FastDropout(seed)
    head_loss = fused_head_loss(device)
    if head_loss is not None and head_loss_applies(model):
        setattr(model, HEAD_LOSS_ATTR, head_loss)
    for module in model.modules():
        if _is_plain_lora_linear(module):
            if dtype is not None:
                _store_base_in(module.base_layer, dtype)
            module.forward = types.MethodType(_fused_lora_forward, module)
            module.slmlab_dropout = dropout
    return model


def _is_plain_lora_linear(module: Any) -> bool:
    from peft.tuners.lora.layer import LoraLayer

    return (
        isinstance(module, LoraLayer)
        and isinstance(getattr(module, "base_layer", None), torch.nn.Linear)
        and not module.lora_variant  # DoRA and friends keep peft's forward
        and not module.use_dora.get("default", False)
    )


def _store_base_in(layer: torch.nn.Linear, dtype: torch.dtype) -> None:
    """Frozen weights in the autocast dtype once, instead of a cast in every forward."""
    if hasattr(layer.weight, "quant_state"):  # bitsandbytes 4-bit: dequantize to dtype
        layer.compute_dtype = dtype
        layer.compute_type_is_set = True
        return
    if layer.weight.dtype in (torch.int8, torch.uint8) or layer.weight.requires_grad:
        return  # 8-bit weights, or a base that trains: leave them be
    layer.weight.data = layer.weight.data.to(dtype)
    if layer.bias is not None:
        layer.bias.data = layer.bias.data.to(dtype)


class FastDropout:
    """Inverted dropout with masks from numpy's PCG64 stream (one per model)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def __call__(self, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
        if not training or p == 0:
            return x
        keep = self.rng.random(tuple(x.shape), dtype=np.float32) >= np.float32(p)
        mask = torch.from_numpy(keep).to(x.device)
        return _MaskedScale.apply(x, mask, 1.0 / (1.0 - p))


class _MaskedScale(torch.autograd.Function):
    """``x * mask * scale`` saving only the 1-byte mask for the backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.where(mask, x * scale, 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad * ctx.scale, 0), None, None


def _fused_lora_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """peft's LoRA ``Linear.forward`` for the one-adapter training case, fused."""
    adapters = [a for a in self.active_adapters if a in self.lora_A]
    if self.disable_adapters or self.merged or len(adapters) != 1 or args or kwargs:
        return type(self).forward(self, x, *args, **kwargs)
    name = adapters[0]
    weight_a, weight_b = self.lora_A[name].weight, self.lora_B[name].weight
    device = x.device.type
    autocast = torch.is_autocast_enabled(device)
    if not autocast and x.dtype != weight_a.dtype:
        return type(self).forward(self, x, *args, **kwargs)
    # Under autocast only the frozen base matmul runs in bf16 (x cast once, here);
    # the LoRA branch and its gradients stay fp32: Adam's sign-like first steps
    # amplify bf16 rounding in small LoRA gradients.
    result = self.base_layer(x.to(torch.get_autocast_dtype(device)) if autocast else x)
    if not autocast and result.dtype != weight_a.dtype:
        return type(self).forward(self, x, *args, **kwargs)
    dropout = self.lora_dropout[name]
    p = float(getattr(dropout, "p", 0.0))  # nn.Identity when lora_dropout is 0
    with torch.autocast(device, enabled=False):
        x = x.to(weight_a.dtype)
        hidden = F.linear(self.slmlab_dropout(x, p, self.training), weight_a)
        out = torch.addmm(
            result.reshape(-1, result.shape[-1]).to(weight_a.dtype),
            hidden.reshape(-1, hidden.shape[-1]),
            weight_b.t(),
            alpha=self.scaling[name],
        )
    return out.view(result.shape)


def dropout_state(model: Any) -> dict[str, Any] | None:
    """The dropout mask generator's state, for checkpoints (None without fast dropout)."""
    for module in model.modules():
        dropout = getattr(module, "slmlab_dropout", None)
        if dropout is not None:
            return dropout.rng.bit_generator.state
    return None


def set_dropout_state(model: Any, state: dict[str, Any] | None) -> None:
    """Put the mask generator back where a checkpoint left it (same masks from there on)."""
    if state is None:
        return
    for module in model.modules():
        dropout = getattr(module, "slmlab_dropout", None)
        if dropout is not None:
            dropout.rng.bit_generator.state = state
            return  # one generator shared by every LoRA layer of the model
