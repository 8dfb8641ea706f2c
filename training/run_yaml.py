"""The run form ↔ run.yaml (RunConfig) and recommendations for the form."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

from projects.models import BaseModel, Dataset, Project
from training.capacity import target_device
from training.engine.config import RunConfig
from training.engine.models.arch import read_model_facts
from training.engine.models.memory import recommend
from training.forms import CONFIG_FIELDS, RunForm


def run_yaml(form: RunForm) -> str:
    data = form.cleaned_data
    config = RunConfig.from_dict(
        {
            **form.config(),
            **data["dataset"].engine_options(),  # how to read and render the file
            "model_dir": form.base_path(),
            "dataset_path": data["dataset"].file.path,
            "output_dir": str(Path(settings.RUNS_DIR) / f"cli-{slugify(data['name']) or 'run'}"),
        }
    )
    return config.to_yaml()


def apply_yaml(form: RunForm, config: RunConfig, project: Project) -> None:
    """Set the form's initial values from ``config``; paths pick the matching model/dataset."""
    for name in CONFIG_FIELDS:
        form.fields[name].initial = getattr(config, name)
    model = BaseModel.objects.filter(path=config.model_dir).first()
    if model is not None:
        form.fields["base_model"].initial = model.pk
    for dataset in project.datasets.all():
        if dataset.file.path == config.dataset_path:
            form.fields["dataset"].initial = dataset.pk


def recommend_settings(model: BaseModel, dataset: Dataset, preset: str, device_key: str = ""):
    """Recommended values for the chosen worker class's device (by default the largest)."""
    arch = read_model_facts(model.path).arch
    device = target_device(device_key or None)
    values, reasons = recommend(
        arch,
        dataset.row_count,
        device.memory_mb,
        preset=preset,
        device=device.kind,
        context_length=model.context_length or None,
    )
    return {k: v for k, v in values.items() if k in CONFIG_FIELDS}, reasons
