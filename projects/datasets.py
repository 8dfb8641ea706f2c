"""Storing validated datasets: nothing is stored unless all of it is valid."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from projects.models import Dataset, Project, dataset_upload_path
from training.engine.data.formats import Problem, format_for_name
from training.engine.data.records import (
    DatasetError,
    DataSpec,
    inspect_file,
    scan_dataset,
)
from training.engine.data.samples import SAMPLES
from training.engine.data.shapes import Record

PREVIEW_ROWS = 5
PREVIEW_CHARS = 2000
# Button labels; a stored sample keeps the engine's English title as its name.
SAMPLE_LABELS = {
    "json-answer": _("Answer in JSON (instructions)"),
    "unit-chat": _("Unit conversion (chat)"),
    "tiny-stories": _("Tiny stories (plain text)"),
}


def _tmp_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def preview_row(record: Record) -> dict[str, Any]:
    """A record as the dataset page shows it: long texts cut, template fields dropped."""

    def cut(text: str) -> str:
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"

    if record.text is not None:
        return {"text": cut(record.text)}
    turns = [{"role": t.role, "content": cut(t.content)} for t in record.turns]
    return {"system": cut(record.system), "turns": turns}


def store_dataset(
    project: Project,
    source: Path,
    name: str,
    spec: DataSpec | None = None,
    columns: list[str] | None = None,
) -> Dataset:
    """Validate ``source`` and move it into the store as a new dataset of ``project``.

    ``source`` is consumed: moved into the store on success, deleted on failure.
    """
    spec = spec or DataSpec()
    try:
        count, preview = scan_dataset(source, spec, keep=PREVIEW_ROWS)
        dataset = Dataset(
            uid=uuid.uuid4(),
            owner=project.owner,
            project=project,
            name=name,
            row_count=count,
            size_bytes=source.stat().st_size,
            preview=[preview_row(r) for r in preview],
            columns=columns or [],
        )
        _apply(dataset, spec)
        relative = dataset_upload_path(dataset, source.name)
        final = Path(settings.MEDIA_ROOT) / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        with transaction.atomic():
            dataset.file.name = relative
            dataset.save()
            os.replace(source, final)
        return dataset
    finally:
        source.unlink(missing_ok=True)


def _apply(dataset: Dataset, spec: DataSpec) -> None:
    dataset.file_format = spec.format
    dataset.shape = spec.shape
    dataset.mapping = dict(spec.mapping)
    dataset.text_split = spec.text_split
    dataset.template = spec.template
    dataset.custom_template = spec.custom_template


def _too_big(size: int) -> DatasetError:
    limit = settings.DATASET_MAX_UPLOAD_MB
    return DatasetError(
        [Problem(None, None, f"the file is {size / 2**20:.1f} MB; the limit is {limit} MB")]
    )


def receive_upload(upload: UploadedFile, suffix: str) -> Path:
    """The upload streamed to a temporary file within the size limit; nothing left if not."""
    limit = settings.DATASET_MAX_UPLOAD_MB * 2**20
    if upload.size is not None and upload.size > limit:
        raise _too_big(upload.size)
    fd, tmp = tempfile.mkstemp(dir=_tmp_dir(), suffix=f".{suffix}")
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks(chunk_size=2**20):
                written += len(chunk)
                if written > limit:  # a client may under-declare the size
                    raise _too_big(written)
                out.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def store_upload(
    project: Project,
    upload: UploadedFile,
    name: str,
    shape: str = "",
    mapping: dict[str, str] | None = None,
    text_split: str = "line",
) -> Dataset:
    """Stream an upload to disk, recognise its shape (unless given), validate and store it."""
    if upload.size is not None and upload.size > settings.DATASET_MAX_UPLOAD_MB * 2**20:
        raise _too_big(upload.size)
    used = project.owner.datasets.aggregate(total=models.Sum("size_bytes"))["total"] or 0
    quota = project.owner.storage_quota_mb * 2**20
    if upload.size is not None and used + upload.size > quota:
        raise DatasetError(
            [
                Problem(
                    None,
                    None,
                    f"your datasets use {used / 2**20:.1f} MB of your "
                    f"{project.owner.storage_quota_mb} MB storage quota; this file needs "
                    f"{upload.size / 2**20:.1f} MB more (delete a dataset or ask an operator)",
                )
            ]
        )
    fmt = format_for_name(upload.name or "") or "jsonl"
    source = receive_upload(upload, fmt)
    try:
        inspection = inspect_file(source, fmt, text_split)
        if not shape:
            if inspection.shape is None:
                problems = inspection.problems or [
                    Problem(None, None, unrecognised(inspection.columns))
                ]
                raise DatasetError(problems)
            shape, mapping = inspection.shape, inspection.mapping
        spec = DataSpec(fmt, shape, dict(mapping or {}), text_split)
    except BaseException:
        source.unlink(missing_ok=True)
        raise
    return store_dataset(project, source, name, spec, inspection.columns)


def unrecognised(columns: list[str]) -> str:
    found = ", ".join(f'"{c}"' for c in columns[:20]) or "none"
    return (
        f"the columns ({found}) fit none of the known shapes: choose a shape under "
        f"“Shape and columns” and map its fields to your columns"
    )


def apply_settings(dataset: Dataset, spec: DataSpec, count: int, preview: list) -> None:
    """Save settings whose every row was checked (``count`` rows, the first ``preview``)."""
    _apply(dataset, spec)
    dataset.row_count = count
    dataset.preview = [preview_row(r) for r in preview]
    dataset.save(
        update_fields=[
            "file_format",
            "shape",
            "mapping",
            "text_split",
            "template",
            "custom_template",
            "row_count",
            "preview",
        ]
    )


def store_sample(project: Project, key: str = "json-answer") -> Dataset:
    sample = SAMPLES[key]
    fd, tmp = tempfile.mkstemp(dir=_tmp_dir(), suffix=f".{sample.file_format}")
    os.close(fd)
    sample.write(Path(tmp))
    spec = DataSpec(sample.file_format, sample.shape, {}, sample.text_split)
    return store_dataset(project, Path(tmp), sample.title, spec)


def _files(dataset: Dataset) -> list[Path]:
    paths = [Path(dataset.file.path)]
    if dataset.validation_file:
        paths.append(Path(dataset.validation_file.path))
    return paths


def delete_dataset(dataset: Dataset) -> None:
    paths = _files(dataset)
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in paths])


def delete_project(project: Project) -> None:
    """Delete a project with its datasets and runs, and their files once the rows are gone."""
    paths = [path for d in project.datasets.all() for path in _files(d)]
    run_dirs = [run.output_dir for run in project.runs.all()]

    def remove_files() -> None:
        for path in paths:
            path.unlink(missing_ok=True)
        for run_dir in run_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)

    with transaction.atomic():
        # Runs first: they protect the datasets they trained on.
        project.runs.all().delete()
        project.delete()
        transaction.on_commit(remove_files)
