"""Storing validated datasets: nothing is stored unless all of it is valid."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction

from projects.models import Dataset, Project, dataset_upload_path
from training.engine.data import DatasetError, Problem, scan_alpaca_jsonl
from training.engine.samples import write_sample_dataset

PREVIEW_ROWS = 5
SAMPLE_NAME = "Sample: answer in JSON"


def _tmp_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_dataset(project: Project, source: Path, name: str) -> Dataset:
    """Validate ``source`` and move it into the store as a new dataset of ``project``.

    ``source`` is consumed: moved into the store on success, deleted on failure.
    """
    try:
        count, preview = scan_alpaca_jsonl(source, keep=PREVIEW_ROWS)
        dataset = Dataset(
            uid=uuid.uuid4(),
            owner=project.owner,
            project=project,
            name=name,
            row_count=count,
            size_bytes=source.stat().st_size,
            preview=preview,
        )
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


def store_upload(project: Project, upload: UploadedFile, name: str) -> Dataset:
    limit = settings.DATASET_MAX_UPLOAD_MB * 1024 * 1024
    if upload.size is not None and upload.size > limit:
        raise DatasetError(
            [
                Problem(
                    None,
                    None,
                    f"the file is {upload.size / 2**20:.1f} MB; "
                    f"the limit is {settings.DATASET_MAX_UPLOAD_MB} MB",
                )
            ]
        )
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
    fd, tmp = tempfile.mkstemp(dir=_tmp_dir(), suffix=".jsonl")
    with os.fdopen(fd, "wb") as out:
        for chunk in upload.chunks(chunk_size=1024 * 1024):
            out.write(chunk)
    return store_dataset(project, Path(tmp), name)


def store_sample(project: Project) -> Dataset:
    fd, tmp = tempfile.mkstemp(dir=_tmp_dir(), suffix=".jsonl")
    os.close(fd)
    write_sample_dataset(tmp)
    return store_dataset(project, Path(tmp), SAMPLE_NAME)


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
