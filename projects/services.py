"""Workflows of the projects app that enqueue work. Enqueues happen after commit, only here."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from django.db import transaction

from accounts.models import User
from projects import uploads
from projects.actors import (
    check_dataset,
    check_upload,
    compute_dataset_stats,
    download_model,
    generate_synthetic,
    import_hub_dataset,
    preview_tokens,
)
from projects.models import (
    BaseModel,
    Dataset,
    DatasetCheck,
    DatasetImport,
    DatasetStats,
    ModelDownload,
    SyntheticGeneration,
    Upload,
    UploadStatus,
)
from slmlab.jobs import JobStatus
from training.engine.config import DEFAULT_MAX_SEQ_LEN
from training.engine.data.records import DatasetError, DataSpec
from training.engine.models.catalog import CatalogModel


def request_stats(
    dataset: Dataset, base_model: BaseModel | None = None, max_len: int | None = None
) -> DatasetStats | None:
    """Statistics of ``dataset`` for this model and max length, queued unless already there.

    A failed computation is queued again. None when the lab has no base model yet.
    """
    base_model = base_model or BaseModel.objects.first()
    if base_model is None:
        return None
    with transaction.atomic():
        stats, wanted = DatasetStats.wanted(dataset, base_model, max_len or DEFAULT_MAX_SEQ_LEN)
        if wanted:
            transaction.on_commit(lambda: compute_dataset_stats.send(stats.pk))
    return stats


def request_check(dataset: Dataset, spec: DataSpec) -> DatasetCheck:
    """Check every row with new settings on a worker, then save them (see DatasetCheck).

    A check of the same dataset still waiting is cancelled: the newest settings win.
    """
    with transaction.atomic():
        for waiting in dataset.checks.filter(status=JobStatus.QUEUED):
            waiting.cancel()
        check = DatasetCheck.objects.create(dataset=dataset, spec=asdict(spec))
        transaction.on_commit(lambda: check_dataset.send(check.pk))
    return check


def request_preview(dataset: Dataset, spec: DataSpec, base_model: BaseModel) -> str:
    """Ask a worker to tokenize the first rows with ``spec``; returns the request's key,
    which names the fragment the worker pushes to the dataset's page."""
    key = uuid.uuid4().hex[:12]
    transaction.on_commit(lambda: preview_tokens.send(dataset.pk, asdict(spec), base_model.pk, key))
    return key


def request_download(user: User, entry: CatalogModel) -> ModelDownload:
    """Queue a download of a curated model (after commit); reuses one already under way."""
    active = ModelDownload.objects.filter(
        repo_id=entry.repo_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).first()
    if active is not None:
        return active
    with transaction.atomic():
        download = ModelDownload.objects.create(
            requested_by=user, repo_id=entry.repo_id, name=entry.name, licence=entry.licence
        )
        transaction.on_commit(lambda: download_model.send(download.pk))
    return download


def request_hub_import(
    project, repo_id: str, config: str, split: str, revision: str, name: str
) -> DatasetImport:
    """Queue an import of a Hub dataset into ``project`` on the CPU worker (after commit)."""
    with transaction.atomic():
        item = DatasetImport.objects.create(
            owner=project.owner,
            project=project,
            repo_id=repo_id,
            config=config,
            split=split or "train",
            revision=revision,
            name=name or repo_id.rsplit("/", 1)[-1],
        )
        transaction.on_commit(lambda: import_hub_dataset.send(item.pk))
    return item


def request_generation(
    project, name: str, target, model_label: str, recipe: dict, rows: int
) -> SyntheticGeneration:
    """Queue a model-written dataset for ``project`` on the GPU worker (after commit);
    ``target`` is the model the owner chose (playground.services.resolve_model)."""
    with transaction.atomic():
        item = SyntheticGeneration.objects.create(
            owner=project.owner,
            project=project,
            name=name,
            model_ref=target.model_id,
            model_label=model_label,
            base_model=target.base_model,
            run=target.run,
            recipe=recipe,
            rows_total=rows,
        )
        transaction.on_commit(lambda: generate_synthetic.send(item.pk))
    return item


def finish_upload(upload: Upload) -> Upload:
    """Store a completely received upload: here and now when that is quick (its rows were
    checked as they came, or it is small), else on the CPU worker, whose progress the
    page follows. A second call (a retried request) changes nothing; returns the upload
    as it stands (done with ``result``, failed with ``problems``, or queued)."""
    if upload.status != UploadStatus.RECEIVING or upload.received != upload.size:
        return upload
    if not uploads.checks_in_request(upload):
        with transaction.atomic():
            if upload.queue():
                transaction.on_commit(lambda: check_upload.send(upload.pk))
        upload.refresh_from_db()
        return upload
    if not upload.take():
        upload.refresh_from_db()
        return upload
    try:
        dataset = uploads.store(upload)
    except DatasetError as exc:
        upload.fail("the file does not fit", problems=uploads.problem_lines(exc))
    else:
        upload.finish(result=dataset, row_count=dataset.row_count)
        if upload.purpose != Upload.Purpose.VALIDATION:
            request_stats(dataset)
    upload.refresh_from_db()
    return upload
