"""Hub downloads on a worker: the glue between ModelDownload rows and training.engine.hub."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from projects.management.commands.import_bundled_model import folder_facts
from projects.models import BaseModel, ModelDownload
from training.engine.catalog import CatalogModel

logger = logging.getLogger(__name__)


def request_download(user: User, entry: CatalogModel) -> ModelDownload:
    """Queue a download of a curated model (after commit); reuses one already under way."""
    from projects.actors import download_model

    active = ModelDownload.objects.filter(
        repo_id=entry.repo_id, status__in=["queued", "downloading"]
    ).first()
    if active is not None:
        return active
    with transaction.atomic():
        download = ModelDownload.objects.create(
            requested_by=user, repo_id=entry.repo_id, name=entry.name, licence=entry.licence
        )
        transaction.on_commit(lambda: download_model.send(download.pk))
    return download


def run_download(download_id: int) -> None:
    """Worker side: claim the row, fetch the files, register the model; never half-done."""
    from training.engine.hub import download as hub_download

    claimed = ModelDownload.objects.filter(pk=download_id, status="queued").update(
        status="downloading"
    )
    if not claimed:
        return  # a duplicate delivery, or already done
    item = ModelDownload.objects.get(pk=download_id)
    target = Path(settings.MODEL_STORE_DIR) / item.name
    last = {"t": 0.0}

    def on_progress(done: int, total: int) -> None:
        # Called from the progress thread too: it needs its own connection, closed after.
        now = time.monotonic()
        if now - last["t"] < 0.9 and done < total:
            return
        last["t"] = now
        ModelDownload.objects.filter(pk=download_id).update(bytes_done=done, bytes_total=total)
        if threading.current_thread().name == "hub-progress":
            connection.close()

    taken = f"a model called {item.name!r} is already in the store"
    fetched = False
    try:
        if BaseModel.objects.filter(name=item.name).exists():
            raise RuntimeError(taken)
        hub_download(item.repo_id, target, on_progress)
        fetched = True
        with transaction.atomic():
            model = BaseModel.objects.create(
                name=item.name,
                path=str(target),
                source=BaseModel.Source.HUB,
                licence=item.licence,
                **folder_facts(target),
            )
            ModelDownload.objects.filter(pk=download_id).update(
                status="done", base_model=model, finished=timezone.now()
            )
    except Exception as exc:
        if fetched:  # fetched but not registered: a folder no model row points at
            shutil.rmtree(target, ignore_errors=True)
        # An IntegrityError here is the name, registered meanwhile (manage.py import_model).
        error = taken if isinstance(exc, IntegrityError) else str(exc)
        logger.warning("download of %s failed: %s", item.repo_id, error)
        ModelDownload.objects.filter(pk=download_id).update(
            status="failed", error=error, finished=timezone.now()
        )
