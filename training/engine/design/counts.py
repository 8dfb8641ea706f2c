"""Exact parameter counts, training FLOPs per token and training memory of a design.

Plain arithmetic over :class:`~.spec.Design` (no torch), so the web process computes
them as the user types; ``tests/engine/test_design.py`` holds the parameter counts
equal to the instantiated transformers model's ``numel``.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.engine.design.spec import Design, Layer, architecture_of, validate

FP32 = 4


@dataclass(frozen=True)
class BlockCount:
    """Parameters of one block of the stack, in order from input to output."""

    name: str
    parameters: int


def _layer_linear(design: Design, layer: Layer) -> int:
    """Weights of a layer's matrix multiplications (what costs FLOPs)."""
    h, d = design.hidden_size, design.head_dim(layer)
    q, kv = layer.heads * d, layer.kv_heads * d
    attention = h * q + 2 * h * kv + q * h
    mlp = (3 if layer.mlp == "swiglu" else 2) * h * layer.mlp_hidden
    return attention + mlp


def layer_parameters(design: Design, layer: Layer) -> int:
    h = design.hidden_size
    linear = _layer_linear(design, layer)
    if layer.norm == "layernorm":  # GPT-2: weight and bias per norm, biases on every linear
        d = design.head_dim(layer)
        biases = (layer.heads + 2 * layer.kv_heads) * d + h + layer.mlp_hidden + h
        return linear + biases + 2 * 2 * h
    return linear + 2 * h


def block_counts(design: Design) -> list[BlockCount]:
    """Parameters per block: embedding, positions, each layer, final norm, LM head."""
    h, v = design.hidden_size, design.vocab_size
    blocks = [BlockCount("embedding", v * h)]
    learned = design.positions == "learned"
    blocks.append(BlockCount("positions", design.context_length * h if learned else 0))
    for index, layer in enumerate(design.layers):
        blocks.append(BlockCount(f"layer {index + 1}", layer_parameters(design, layer)))
    blocks.append(BlockCount("final norm", 2 * h if design.final_norm == "layernorm" else h))
    blocks.append(BlockCount("lm head", 0 if design.tie_embeddings else v * h))
    return blocks


def total_parameters(design: Design) -> int:
    return sum(block.parameters for block in block_counts(design))


def training_flops_per_token(design: Design, sequence_length: int) -> int:
    """Forward + backward FLOPs for one token: 3 x (2 x matmul weights + attention).

    Matmul weights are every layer's linear weights and the LM head (an embedding
    lookup costs none); attention scores and their weighted sum cost
    ``2 x 2 x sequence x query width`` per layer, counted over the whole sequence
    (the Kaplan et al. convention, not halved for the causal mask).
    """
    h, v = design.hidden_size, design.vocab_size
    forward = 2 * v * h
    for layer in design.layers:
        forward += 2 * _layer_linear(design, layer)
        forward += 4 * sequence_length * layer.heads * design.head_dim(layer)
    return 3 * forward


def training_memory_bytes(design: Design, batch_size: int, sequence_length: int) -> int:
    """Estimated peak training memory in fp32 with AdamW.

    Weights, gradients and two AdamW moments (16 bytes a parameter), the activations
    autograd keeps per token and layer (norm inputs, q/k/v, attention output, the MLP
    intermediates, with SDPA keeping no sequence x sequence scores), and the logits
    with the cross entropy's copies (3 x vocabulary per token).
    """
    h = design.hidden_size
    tokens = batch_size * sequence_length
    state = 16 * total_parameters(design)
    per_token = 0
    for layer in design.layers:
        d = design.head_dim(layer)
        attention = (2 * layer.heads + 2 * layer.kv_heads) * d + h
        mlp = (4 if layer.mlp == "swiglu" else 2) * layer.mlp_hidden + h
        per_token += 2 * h + attention + mlp
    per_token += 2 * h + 3 * design.vocab_size
    return state + tokens * per_token * FP32


@dataclass(frozen=True)
class Counts:
    """Everything the editor shows about a valid design."""

    architecture: str
    blocks: list[BlockCount]
    parameters: int
    flops_per_token: int
    memory_bytes: int


def count(design: Design, batch_size: int, sequence_length: int) -> Counts:
    """The counts of a valid design (see :func:`~.spec.validate`)."""
    return Counts(
        architecture=architecture_of(design),
        blocks=block_counts(design),
        parameters=total_parameters(design),
        flops_per_token=training_flops_per_token(design, sequence_length),
        memory_bytes=training_memory_bytes(design, batch_size, sequence_length),
    )


def check(
    design: Design,
    *,
    batch_size: int,
    sequence_length: int,
    tokenizer_vocab: int | None = None,
    memory_limit_bytes: int | None = None,
) -> dict[str, str]:
    """:func:`~.spec.validate`, and whether the largest live worker holds the training."""
    errors = validate(design, sequence_length=sequence_length, tokenizer_vocab=tokenizer_vocab)
    if errors or memory_limit_bytes is None:
        return errors
    need = training_memory_bytes(design, batch_size, sequence_length)
    if need > memory_limit_bytes:
        errors["layers"] = (
            f"training needs about {need / 2**30:.1f} GiB, more than the largest live "
            f"worker has ({memory_limit_bytes / 2**30:.1f} GiB)"
        )
    return errors
