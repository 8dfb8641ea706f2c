"""Websocket pushes to the pages of one dataset: statistics, setting checks, token previews.

The database is the truth; a push only nudges the open pages (see slmlab.consumers).
"""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string

from projects.models import (
    Dataset,
    DatasetCheck,
    DatasetImport,
    DatasetStats,
    SyntheticGeneration,
    Upload,
)
from slmlab.charts import histogram_chart
from slmlab.consumers import push_to_group


def dataset_group(dataset_id: int) -> str:
    return f"dataset-{dataset_id}"


def stats_context(stats: DatasetStats | None) -> dict:
    done = stats is not None and stats.status == DatasetStats.Status.DONE
    return {
        "stats": stats,
        "chart": histogram_chart(stats.result) if done else None,
        "truncated_percent": 100 * stats.result["truncated_share"] if done else 0,
    }


def render_stats(dataset: Dataset) -> str:
    """Every statistics panel of the dataset (a page shows the one it asked for) and the
    dataset page's summary of the latest."""
    panels = [
        render_to_string("projects/dataset_stats.html#panel", stats_context(stats))
        for stats in dataset.stats.select_related("base_model")
    ]
    summary = render_to_string(
        "projects/_dataset_manage.html#stats_summary",
        {"dataset": dataset, "project": dataset.project, "latest_stats": dataset.stats.first()},
    )
    return "".join(panels) + summary


def render_check(check: DatasetCheck) -> str:
    return render_to_string("projects/dataset_detail.html#settings_check", {"check": check})


def current_state(dataset: Dataset) -> str:
    """What a page following the dataset gets when it connects."""
    active = [c for c in dataset.checks.all()[:5] if c.is_active]
    return render_stats(dataset) + "".join(render_check(c) for c in active)


def publish_stats(dataset_id: int) -> None:
    def send() -> None:
        dataset = Dataset.objects.filter(pk=dataset_id).select_related("project").first()
        if dataset is not None:
            push_to_group(dataset_group(dataset_id), render_stats(dataset))

    transaction.on_commit(send)


def publish_check(check_id: int) -> None:
    def send() -> None:
        check = DatasetCheck.objects.filter(pk=check_id).select_related("result").first()
        if check is not None:
            push_to_group(dataset_group(check.dataset_id), render_check(check))

    transaction.on_commit(send)


def publish_preview(dataset_id: int, html: str) -> None:
    transaction.on_commit(lambda: push_to_group(dataset_group(dataset_id), html))


def upload_group(upload_id: int) -> str:
    return f"upload-{upload_id}"


def render_upload(upload: Upload) -> str:
    return render_to_string("projects/_upload.html#upload_status", {"upload": upload})


def publish_upload(upload_id: int) -> None:
    def send() -> None:
        upload = Upload.objects.filter(pk=upload_id).select_related("result", "project").first()
        if upload is not None:
            push_to_group(upload_group(upload_id), render_upload(upload))

    transaction.on_commit(send)


def import_group(import_id: int) -> str:
    return f"dataset-import-{import_id}"


def render_import(item: DatasetImport) -> str:
    return render_to_string("projects/hub_import.html#import_status", {"item": item})


def publish_import(import_id: int) -> None:
    def send() -> None:
        item = DatasetImport.objects.filter(pk=import_id).select_related("result").first()
        if item is not None:
            push_to_group(import_group(import_id), render_import(item))

    transaction.on_commit(send)


def generation_group(generation_id: int) -> str:
    return f"synthetic-generation-{generation_id}"


def render_generation(item: SyntheticGeneration) -> str:
    return render_to_string("projects/synthetic_model.html#generation_status", {"item": item})


def publish_generation(generation_id: int) -> None:
    def send() -> None:
        item = SyntheticGeneration.objects.filter(pk=generation_id).select_related("result").first()
        if item is not None:
            push_to_group(generation_group(generation_id), render_generation(item))

    transaction.on_commit(send)
