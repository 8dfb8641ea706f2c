"""Storing validated datasets: nothing is stored unless all of it is valid."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
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
    "decompose": _("Question decomposition (JSON)"),
    "ko-en": _("Korean → English"),
    "ko-instruct": _("Korean instructions"),
    "tiny-stories": _("Tiny stories (plain text)"),
    "pretraining-stories": _("Pretraining stories (plain text, varied)"),
}


def tmp_dir() -> Path:
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


@dataclass
class Checked:
    """A received file whose every row was validated: what storing it needs."""

    path: Path
    spec: DataSpec
    rows: int
    preview: list[dict]  # the first rows as the dataset page shows them
    columns: list[str]


def store_dataset(
    project: Project,
    source: Path,
    name: str,
    spec: DataSpec | None = None,
    columns: list[str] | None = None,
    check_quota: bool = False,
) -> Dataset:
    """Validate ``source`` and move it into the store as a new dataset of ``project``
    (within the owner's storage quota when ``check_quota``).

    ``source`` is consumed: moved into the store on success, deleted on failure.
    """
    spec = spec or DataSpec()
    try:
        count, preview = scan_dataset(source, spec, keep=PREVIEW_ROWS)
    except BaseException:
        source.unlink(missing_ok=True)
        raise
    checked = Checked(source, spec, count, [preview_row(r) for r in preview], columns or [])
    return store_checked(project, checked, name, check_quota=check_quota)


def store_checked(
    project: Project, checked: Checked, name: str, check_quota: bool = True
) -> Dataset:
    """Move a validated file into the store as a new dataset of ``project``, within the
    owner's storage quota. The file is consumed: moved on success, deleted on failure."""
    source = checked.path
    try:
        size = source.stat().st_size
        if check_quota:
            check_quota_for(project.owner, size)
        dataset = Dataset(
            uid=uuid.uuid4(),
            owner=project.owner,
            project=project,
            name=name,
            row_count=checked.rows,
            size_bytes=size,
            preview=checked.preview,
            columns=checked.columns,
        )
        _apply(dataset, checked.spec)
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


def check_quota_for(owner: User, size: int, pending: int = 0) -> None:
    """Refuse ``size`` more bytes beyond what the owner's files use (datasets, runs and
    everything else the quota covers, plus ``pending`` bytes of uploads under way) when
    that passes their storage quota."""
    used = sum(owner.storage_used().values()) + pending
    if used + size > owner.storage_quota_bytes:
        raise DatasetError([Problem(None, None, quota_message(owner, used, size, "this file"))])


def quota_message(owner: User, used: int, size: int, what: str) -> str:
    """The numbers of a refusal: what is used, the quota, and what ``what`` needs."""
    return (
        f"your files use {used / 2**20:.1f} MB of your {owner.storage_quota_mb} MB storage "
        f"quota; {what} needs {size / 2**20:.1f} MB more (delete datasets, runs or "
        "checkpoints you no longer need, or ask an operator)"
    )


def _apply(dataset: Dataset, spec: DataSpec) -> None:
    dataset.file_format = spec.format
    dataset.shape = spec.shape
    dataset.mapping = dict(spec.mapping)
    dataset.text_split = spec.text_split
    dataset.template = spec.template
    dataset.custom_template = spec.custom_template


def too_big(size: int) -> DatasetError:
    limit = settings.DATASET_MAX_UPLOAD_MB
    return DatasetError(
        [Problem(None, None, f"the file is {size / 2**20:.1f} MB; the limit is {limit} MB")]
    )


def _too_big_for_one_request(size: int) -> DatasetError:
    limit = settings.UPLOAD_SINGLE_REQUEST_MB
    return DatasetError(
        [
            Problem(
                None,
                None,
                f"the file is {size / 2**20:.1f} MB; without JavaScript files up to "
                f"{limit} MB can be sent (with it, the page sends larger ones in pieces)",
            )
        ]
    )


def receive_upload(upload: UploadedFile, suffix: str) -> Path:
    """A file sent in one request (a browser without JavaScript) streamed to a temporary
    file, within the size limits; nothing left if not. The page sends larger files in
    pieces instead (projects/uploads.py): daphne holds a whole request body in memory."""
    limit = settings.DATASET_MAX_UPLOAD_MB * 2**20
    one_request = settings.UPLOAD_SINGLE_REQUEST_MB * 2**20
    if upload.size is not None and upload.size > limit:
        raise too_big(upload.size)
    if upload.size is not None and upload.size > one_request:
        raise _too_big_for_one_request(upload.size)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir(), suffix=f".{suffix}")
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks(chunk_size=2**20):
                written += len(chunk)
                if written > min(limit, one_request):  # a client may under-declare the size
                    raise too_big(written) if written > limit else _too_big_for_one_request(written)
                out.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def check_received(
    source: Path,
    fmt: str,
    shape: str = "",
    mapping: dict[str, str] | None = None,
    text_split: str = "line",
    on_progress: Callable[[int], None] | None = None,
) -> Checked:
    """Recognise the shape of a received file (unless given) and validate every row;
    raises DatasetError (and leaves the file to the caller) when it does not fit."""
    inspection = inspect_file(source, fmt, text_split)
    if not shape:
        if inspection.shape is None:
            unknown = Problem(None, None, unrecognised(inspection.columns))
            raise DatasetError(inspection.problems or [unknown])
        shape, mapping = inspection.shape, inspection.mapping
    spec = DataSpec(fmt, shape, dict(mapping or {}), text_split)
    count, preview = scan_dataset(source, spec, keep=PREVIEW_ROWS, on_progress=on_progress)
    return Checked(source, spec, count, [preview_row(r) for r in preview], inspection.columns)


def store_upload(
    project: Project,
    upload: UploadedFile,
    name: str,
    shape: str = "",
    mapping: dict[str, str] | None = None,
    text_split: str = "line",
) -> Dataset:
    """A file sent in one request: streamed to disk, its shape recognised (unless
    given), validated and stored; nothing is stored unless all of it is valid."""
    if upload.size is not None and upload.size > settings.DATASET_MAX_UPLOAD_MB * 2**20:
        raise too_big(upload.size)
    if upload.size is not None:
        check_quota_for(project.owner, upload.size)
    return store_checked(project, receive_and_check(upload, shape, mapping, text_split), name)


def receive_and_check(
    upload: UploadedFile,
    shape: str = "",
    mapping: dict[str, str] | None = None,
    text_split: str = "line",
) -> Checked:
    """A file sent in one request, received and validated (see :func:`check_received`)."""
    fmt = format_for_name(upload.name or "") or "jsonl"
    source = receive_upload(upload, fmt)
    try:
        return check_received(source, fmt, shape, mapping, text_split)
    except BaseException:
        source.unlink(missing_ok=True)
        raise


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
    fd, tmp = tempfile.mkstemp(dir=tmp_dir(), suffix=f".{sample.file_format}")
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
    # Validation or replacement files on their way for it go with it.
    paths = _files(dataset) + [upload.path for upload in dataset.uploads.all()]
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in paths])


def delete_project(project: Project) -> None:
    """Delete a project with its datasets and runs, and their files once the rows are gone."""
    paths = [path for d in project.datasets.all() for path in _files(d)]
    paths += [upload.path for upload in project.uploads.all()]  # files on their way
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


FILE_DELETED = (
    "the file of this dataset was deleted after training (its owner asked for that); "
    "upload it again as a new dataset to change or train on it"
)


def require_file(dataset: Dataset) -> None:
    """DatasetError for a dataset whose file is gone: nothing can read or change it."""
    if dataset.file_deleted_at is not None:
        raise DatasetError([Problem(None, None, FILE_DELETED)])


def drop_file(dataset: Dataset) -> bool:
    """Delete the dataset's file and validation file, keeping its row, preview and
    statistics; False when they are gone already. Other versions keep their own links."""
    changed = Dataset.objects.filter(pk=dataset.pk, file_deleted_at=None).update(
        file_deleted_at=timezone.now()
    )
    if not changed:
        return False
    paths = _files(dataset)
    transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in paths])
    dataset.refresh_from_db(fields=["file_deleted_at"])
    return True
