"""A large upload checked whole and stored on the CPU worker (formats whose rows could
not be checked as they arrived), so the web process never spends long on one file."""

from __future__ import annotations

import logging
import time

from projects import events, uploads
from projects.jobs.check import compute_new_statistics
from projects.models import Upload, UploadStatus
from training.engine.data.records import DatasetError

logger = logging.getLogger(__name__)
PUSH_EVERY_S = 1.0


class Cancelled(Exception):
    """The upload was removed (its project or dataset deleted) while it was checked."""


def check(upload_id: int) -> None:
    """Claim one complete upload, check every row and store it; a second delivery does
    nothing. The page follows it over the upload's websocket."""
    upload = Upload.objects.select_related("project", "dataset").filter(pk=upload_id).first()
    if upload is None or not upload.claim():
        return
    events.publish_upload(upload.pk)
    last_push = time.monotonic()

    def progress(rows: int) -> None:
        nonlocal last_push
        if not upload.report(row_count=rows):
            raise Cancelled
        if time.monotonic() - last_push >= PUSH_EVERY_S:
            last_push = time.monotonic()
            events.publish_upload(upload.pk)

    try:
        dataset = uploads.store(upload, on_progress=progress)
    except DatasetError as exc:
        upload.fail("the file does not fit", problems=uploads.problem_lines(exc))
    except Exception as exc:
        if not Upload.objects.filter(pk=upload_id, status=UploadStatus.RUNNING).exists():
            logger.info("upload %s: removed while it was checked; stopped", upload_id)
            return
        logger.exception("upload %s failed", upload_id)
        upload.fail(f"{type(exc).__name__}: {exc}")
    else:
        upload.finish(result=dataset, row_count=dataset.row_count)
    events.publish_upload(upload.pk)
    if upload.status == UploadStatus.DONE and upload.purpose != Upload.Purpose.VALIDATION:
        compute_new_statistics(dataset)
