"""The model card (README.md with YAML metadata) pushed with an export to the Hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

LIBRARIES = {"adapter": "peft", "merged": "transformers", "gguf": "gguf"}


@dataclass
class CardFacts:
    """What the card says; every field comes from the lab's records of the run."""

    repo_id: str
    kind: str  # adapter | merged | gguf
    export_label: str
    base_model: str  # the Hub id of the base, "" when it has none (a local model)
    license: str
    dataset_name: str
    dataset_rows: int
    dataset_shape: str
    dataset_template: str
    run_name: str
    config: dict[str, Any]
    steps: int
    losses: list[float] = field(default_factory=list)
    base_eval_loss: float | None = None
    eval_loss: float | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    # Pretrained from random weights in the lab (``base_name`` names its design): no base.
    pretrained: bool = False
    base_name: str = ""  # what the lab calls the base (the card's text names it)


def _metadata(facts: CardFacts) -> dict[str, Any]:
    tags = ["slmlab", "pretrained"] if facts.pretrained else ["slmlab", "fine-tuned", "lora"]
    if facts.kind == "gguf":
        tags.append("gguf")
    meta: dict[str, Any] = {
        # Only a Hub model id: the Hub refuses a card whose base_model is anything else.
        **({"base_model": facts.base_model} if facts.base_model and not facts.pretrained else {}),
        "license": facts.license or "other",
        "library_name": LIBRARIES[facts.kind],
        "pipeline_tag": "text-generation",
        "tags": tags,
        "datasets": [facts.dataset_name],
    }
    return meta


def _curve(losses: list[float]) -> str:
    if not losses:
        return "No training steps were recorded."
    return (
        f"{len(losses)} steps; training loss {losses[0]:.4f} at the first step, "
        f"{min(losses):.4f} at its lowest and {losses[-1]:.4f} at the last."
    )


def model_card(facts: CardFacts) -> str:
    front = yaml.safe_dump(_metadata(facts), sort_keys=False, allow_unicode=True).strip()
    config = yaml.safe_dump(facts.config, sort_keys=True, allow_unicode=True).strip()
    lines = [
        "---",
        front,
        "---",
        "",
        f"# {facts.repo_id.split('/')[-1]}",
        "",
        (
            f"A {facts.export_label} of a model pretrained from random weights in SLM Lab: "
            f"{facts.base_name} (run “{facts.run_name}”)."
            if facts.pretrained
            else f"A {facts.export_label} of `{facts.base_model or facts.base_name}` "
            f"fine-tuned with LoRA in SLM Lab (run “{facts.run_name}”)."
        ),
        "",
        "## Data",
        "",
        f"- Dataset: {facts.dataset_name} ({facts.dataset_rows} rows, {facts.dataset_shape})",
        f"- Prompt template: {facts.dataset_template}",
        "",
        "## Training",
        "",
        _curve(facts.losses),
        "",
    ]
    if facts.eval_loss is not None or facts.base_eval_loss is not None:
        base = "n/a" if facts.base_eval_loss is None else f"{facts.base_eval_loss:.4f}"
        tuned = "n/a" if facts.eval_loss is None else f"{facts.eval_loss:.4f}"
        lines += [f"Validation loss: {tuned} (base model: {base}).", ""]
    lines += ["Run configuration:", "", "```yaml", config, "```", ""]
    if facts.evaluation:
        lines += ["## Evaluation", ""]
        lines += [f"- {name}: {value}" for name, value in facts.evaluation.items()]
        lines.append("")
    if facts.verification:
        lines += ["## Export verification", "", _verification(facts.verification), ""]
    lines += [
        "## Intended use",
        "",
        "A small model tuned for the task its dataset shows, for experiments and teaching. "
        "It inherits the base model's limitations and licence; check its answers before "
        "relying on them.",
        "",
    ]
    return "\n".join(lines)


def _verification(result: dict[str, Any]) -> str:
    if result.get("kind") == "merged":
        return (
            "Reloaded with transformers, the merged weights answer the lab's check prompts "
            "exactly like the adapter on its base."
        )
    if result.get("kind") == "gguf":
        return (
            f"Loaded in llama.cpp ({result.get('gguf_type', '').upper()}): next-token "
            f"agreement with the merged model {result.get('token_agreement', 0):.1%}, mean KL "
            f"{result.get('mean_kl', 0):.4f}; a chat with the stored template stops at the "
            "end-of-turn token."
        )
    return "Adapter files as the run saved them."
