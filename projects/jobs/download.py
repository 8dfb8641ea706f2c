"""Hub downloads on a worker: the glue between ModelDownload rows and the engine's Hub code."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from projects.models import BaseModel, ModelDownload
from training.engine.models.hub import download as hub_download

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.9


def run_download(download_id: int) -> None:
    """Claim the row, fetch the files, register the model; never half-done."""
    item = ModelDownload.objects.filter(pk=download_id).first()
    if item is None or not item.claim():
        return  # a duplicate delivery, or already done
    target = Path(settings.MODEL_STORE_DIR) / item.name
    last = {"t": 0.0}

    def on_progress(done: int, total: int) -> None:
        # Called from the progress thread too: it needs its own connection, closed after.
        now = time.monotonic()
        if now - last["t"] < PROGRESS_EVERY_S and done < total:
            return
        last["t"] = now
        item.report(bytes_done=done, bytes_total=total)
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
                **BaseModel.facts_of(target),
            )
            item.finish(base_model=model)
    except Exception as exc:
        if fetched:  # fetched but not registered: a folder no model row points at
            shutil.rmtree(target, ignore_errors=True)
        # An IntegrityError here is the name, registered meanwhile (manage.py import_model).
        error = taken if isinstance(exc, IntegrityError) else str(exc)
        logger.warning("download of %s failed: %s", item.repo_id, error)
        item.fail(error)
