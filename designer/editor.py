"""The editor's form: a POSTed design, its actions on blocks, and what the page shows."""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.http import QueryDict

from training.engine.design import counts
from training.engine.design.spec import Design, Layer

LAYER_FIELDS = ("norm", "heads", "kv_heads", "mlp", "mlp_hidden")
INT_FIELDS = {"vocab_size", "hidden_size", "context_length", "heads", "kv_heads", "mlp_hidden"}


def _number(raw: str, kind: type) -> int | float | str:
    try:
        return kind(raw)
    except (TypeError, ValueError):
        return raw  # validate() names the field


@dataclass
class Edited:
    design: Design
    batch_size: int
    sequence_length: int
    tokenizer_id: int | None = None


def parse(data: QueryDict) -> Edited:
    """The design the form holds, with its block action (add, remove-N, up-N) applied."""
    layers = []
    columns = [data.getlist(f"layer_{name}") for name in LAYER_FIELDS]
    for values in zip(*columns, strict=False):
        item = dict(zip(LAYER_FIELDS, values, strict=True))
        layers.append(
            Layer(**{k: _number(v, int) if k in INT_FIELDS else v for k, v in item.items()})
        )
    design = Design(
        vocab_size=_number(data.get("vocab_size", ""), int),
        hidden_size=_number(data.get("hidden_size", ""), int),
        positions=data.get("positions", "rope"),
        rope_theta=_number(data.get("rope_theta", "10000"), float),
        context_length=_number(data.get("context_length", ""), int),
        layers=layers,
        final_norm=data.get("final_norm", "rmsnorm"),
        tie_embeddings=data.get("tie_embeddings") == "on",
        dropout=_number(data.get("dropout", "0"), float),
    )
    apply_action(design, data.get("action", ""))
    batch = _number(data.get("batch_size", "8"), int)
    seq = _number(data.get("sequence_length", "128"), int)
    tokenizer = data.get("tokenizer", "")
    return Edited(
        design,
        batch if isinstance(batch, int) and batch > 0 else 8,
        seq if isinstance(seq, int) and seq > 0 else 128,
        int(tokenizer) if tokenizer.isdigit() else None,
    )


def apply_action(design: Design, action: str) -> None:
    kind, _, index_text = action.partition("-")
    index = int(index_text) if index_text.isdigit() else -1
    if kind == "add":
        design.layers.append(replace(design.layers[-1]) if design.layers else Layer())
    elif kind == "remove" and 0 <= index < len(design.layers):
        del design.layers[index]
    elif kind == "up" and 0 < index < len(design.layers):
        layers = design.layers
        layers[index - 1], layers[index] = layers[index], layers[index - 1]


@dataclass
class DiagramBox:
    label: str
    detail: str
    y: int
    kind: str


def diagram(design: Design) -> tuple[list[DiagramBox], int]:
    """Boxes of the stack, input at the top, and the SVG's height."""
    boxes = [DiagramBox("embedding", f"{design.vocab_size} x {design.hidden_size}", 0, "embed")]
    boxes.append(DiagramBox("positions", design.positions, 0, "pos"))
    for n, layer in enumerate(design.layers, start=1):
        boxes.append(
            DiagramBox(
                f"layer {n}",
                f"{layer.norm} · {layer.heads}/{layer.kv_heads} heads · "
                f"{layer.mlp} {layer.mlp_hidden}",
                0,
                "layer",
            )
        )
    boxes.append(DiagramBox("final norm", design.final_norm, 0, "norm"))
    boxes.append(DiagramBox("LM head", "tied" if design.tie_embeddings else "untied", 0, "head"))
    for i, box in enumerate(boxes):
        box.y = 8 + i * 40
    return boxes, 8 + len(boxes) * 40


def summary(
    edited: Edited, *, tokenizer_vocab: int | None = None, memory_limit_bytes: int | None = None
) -> dict:
    """Errors by field, and the counts when the design is valid: the vocabulary against
    its tokenizer's, the training memory against the largest live worker's."""
    errors = counts.check(
        edited.design,
        batch_size=edited.batch_size,
        sequence_length=edited.sequence_length,
        tokenizer_vocab=tokenizer_vocab,
        memory_limit_bytes=memory_limit_bytes,
    )
    result: dict = {"errors": errors, "counts": None}
    if not errors:
        result["counts"] = counts.count(edited.design, edited.batch_size, edited.sequence_length)
        result["memory_mb"] = result["counts"].memory_bytes / 2**20
    boxes, height = diagram(edited.design)
    result.update(boxes=boxes, diagram_height=height)
    return result


def layer_rows(design: Design, errors: dict[str, str]) -> list[dict]:
    """Each layer's settings with the error next to each."""
    return [
        {
            "index": i,
            "number": i + 1,
            **{name: getattr(layer, name) for name in LAYER_FIELDS},
            "errors": {name: errors.get(f"layers.{i}.{name}", "") for name in LAYER_FIELDS},
        }
        for i, layer in enumerate(design.layers)
    ]


TOP_FIELDS = (
    "vocab_size",
    "hidden_size",
    "positions",
    "rope_theta",
    "context_length",
    "final_norm",
    "dropout",
    "layers",
)


def error_slots(design: Design, errors: dict[str, str]) -> list[tuple[str, str]]:
    """(element id suffix, message) of every error slot, to update them all in place."""
    slots = [(name, errors.get(name, "")) for name in TOP_FIELDS]
    for i in range(len(design.layers)):
        for name in LAYER_FIELDS:
            slots.append((f"layers-{i}-{name}", errors.get(f"layers.{i}.{name}", "")))
    return slots
