"""The token preview on a worker: the first rows rendered and tokenized, trained vs masked."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from projects import events
from projects.models import BaseModel, Dataset
from training.engine.data.formats import Problem
from training.engine.data.records import DatasetError, DataSpec, first_records
from training.engine.data.tokenize import preview_tokens
from training.engine.models.folders import ModelStoreError
from training.engine.models.store import cached_tokenizer

PREVIEW_ROWS = 3
PREVIEW_TOKENS = 400


def token_preview(dataset: Dataset, spec: DataSpec, model_dir: str) -> list[dict[str, Any]]:
    """The first rows rendered with ``spec``'s template: each token trained or masked.

    Raises :class:`DatasetError` when the settings do not fit the file.
    """
    tokenizer = cached_tokenizer(model_dir)
    samples = []
    for record in first_records(dataset.file.path, spec, PREVIEW_ROWS):
        try:
            tokens, total = preview_tokens(
                tokenizer, record, spec.template, spec.custom_template, max_tokens=PREVIEW_TOKENS
            )
        except ValueError as exc:  # the chat template cannot render this conversation
            raise DatasetError([Problem(None, None, str(exc))]) from exc
        trained = sum(t.trained for t in tokens)
        samples.append({"tokens": tokens, "total": total, "shown": len(tokens), "trained": trained})
    return samples


def render_preview(dataset: Dataset, spec: DataSpec, model: BaseModel, key: str) -> str:
    """The fragment that replaces the page's request ``key``: samples, or what is wrong."""
    context: dict[str, Any] = {"key": key, "preview_model": model}
    try:
        context["samples"] = token_preview(dataset, spec, model.path)
    except DatasetError as exc:
        context["preview_errors"] = [str(p) for p in exc.problems]
    except (OSError, ModelStoreError):
        context["preview_errors"] = [f"The tokenizer of {model.name} could not be loaded."]
    return render_to_string("projects/dataset_detail.html#token_preview_result", context)


def preview(dataset_id: int, spec: dict, base_model_id: int, key: str) -> None:
    """Tokenize and push the preview a page asked for (nothing if it went away meanwhile)."""
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    model = BaseModel.objects.filter(pk=base_model_id).first()
    if dataset is None or model is None:
        return
    events.publish_preview(dataset_id, render_preview(dataset, DataSpec(**spec), model, key))
