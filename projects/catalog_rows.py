"""The model catalog page's rows: curated models plus whatever is in the local store."""

from __future__ import annotations

from dataclasses import dataclass

from projects.models import BaseModel
from training.engine.models.arch import Arch, read_model_facts
from training.engine.models.catalog import CATALOG
from training.engine.models.memory import MemorySettings, estimate_memory

# The page compares models at lean settings, where the weights decide what fits:
# batch 1, sequence 512, gradient checkpointing on.
SEQ_LEN, BATCH = 512, 1


@dataclass(frozen=True)
class CatalogRow:
    name: str
    repo_id: str
    params: int
    disk_bytes: int
    context_length: int
    licence: str
    in_store: BaseModel | None
    inference_mb: float
    lora_mb: float
    qlora_mb: float
    key: str = ""  # curated entries only: what the download button posts


def _estimates(
    arch: Arch, device: str, cpu_bf16: bool, checkpoint_dtype: str
) -> tuple[float, float, float]:
    def estimate(quantization: str, autocast: str = "auto"):
        settings = MemorySettings(
            quantization=quantization, max_seq_len=SEQ_LEN, batch_size=BATCH, autocast=autocast
        )
        return estimate_memory(arch, settings, device, checkpoint_dtype, cpu_bf16=cpu_bf16)

    lora, qlora = estimate("none"), estimate("4bit")
    # Inference holds the weights and the runtime, none of the training state, and
    # chat runs no CPU autocast (no bf16 copy of the weights); a GPU keeps its bf16.
    plain = estimate("none", autocast="float32" if device == "cpu" else "auto")
    inference = plain.weights_mb + plain.unquantized_mb + plain.overhead_mb + plain.checkpoint_mb
    return inference, lora.total_mb, qlora.total_mb


def catalog_rows(device: str, cpu_bf16: bool) -> list[CatalogRow]:
    """Every curated model, then the store's other models, estimated for ``device``
    (``cpu_bf16``: a CPU where runs take bf16 autocast)."""
    stored = {m.name: m for m in BaseModel.objects.all()}
    rows = []
    for entry in CATALOG:
        local = stored.pop(entry.repo_id.split("/")[-1], None) or stored.pop(entry.name, None)
        inference, lora, qlora = _estimates(entry.arch, device, cpu_bf16, entry.checkpoint_dtype)
        rows.append(
            CatalogRow(
                entry.name,
                entry.repo_id,
                entry.params,
                entry.disk_bytes,
                entry.context_length,
                entry.licence,
                local,
                inference,
                lora,
                qlora,
                key=entry.key,
            )
        )
    for model in stored.values():  # imported models outside the curated list
        try:
            facts = read_model_facts(model.path)
        except (OSError, ValueError):
            continue
        inference, lora, qlora = _estimates(facts.arch, device, cpu_bf16, facts.checkpoint_dtype)
        rows.append(
            CatalogRow(
                model.name,
                "",
                facts.parameters,
                model.disk_bytes,
                model.context_length,
                model.licence,
                model,
                inference,
                lora,
                qlora,
            )
        )
    return rows
