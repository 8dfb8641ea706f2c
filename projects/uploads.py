"""Dataset files sent by the page in pieces, so that no large file passes through one
request body (daphne holds a whole body in memory: a 300 MB upload took its process
from 0.5 to 3.4 GB).

The protocol (static/js/app.js speaks it):

1. ``POST`` the upload form without the file, plus its ``filename`` and ``size``: the
   form is checked as for a one-request upload and an :class:`Upload` is opened
   (``201 {"url", "offset", "chunk_size"}``), or the form comes back with its errors.
2. ``PUT`` each piece to ``url`` with an ``Upload-Offset`` header. A piece at the
   server's offset is appended; one it already holds is acknowledged and not stored
   again; any other offset gets ``409`` with the server's offset, where the page
   resumes (``GET url`` tells it too, after a dropped connection or a reload).
   Files whose rows are lines (JSONL, one-sample-per-line text) are checked as each
   piece arrives: the first piece recognises the shape, and a bad row ends the upload
   at once with its line number, leaving nothing behind.
3. ``POST url + "finish/"``: the complete file is stored as a dataset, a validation file
   or a replacement (quota, shape and every row checked; see projects/services.py).

Unfinished uploads are removed after ``UPLOAD_ABANDONED_HOURS`` (whenever an upload
starts), with any stray temporary file as old.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from projects import datasets, versions
from projects.models import Dataset, Project, Upload, UploadStatus
from training.engine.data.formats import MAX_RECORD_BYTES, Problem, streamable, too_long
from training.engine.data.records import (
    EMPTY_MESSAGES,
    DatasetError,
    DataSpec,
    file_error,
    inspect_region,
    scan_region,
)

logger = logging.getLogger(__name__)
ACTIVE = (UploadStatus.RECEIVING, UploadStatus.QUEUED, UploadStatus.RUNNING)
_PIECE = 2**20


def start(
    owner: User,
    project: Project,
    purpose: str,
    filename: str,
    size: int,
    fmt: str,
    form: dict[str, str],
    dataset: Dataset | None = None,
    shape: str = "",
    mapping: dict[str, str] | None = None,
    text_split: str = "line",
) -> Upload:
    """Open an upload of ``size`` bytes (the form it came with already valid); raises
    DatasetError for a file over the size limit, empty, or past the storage quota."""
    clean_abandoned()
    if size > settings.DATASET_MAX_UPLOAD_MB * 2**20:
        raise datasets.too_big(size)
    if size == 0:
        raise file_error(EMPTY_MESSAGES[fmt])
    under_way = owner.uploads.filter(status__in=ACTIVE).aggregate(total=models.Sum("size"))
    datasets.check_quota_for(owner, size, pending=under_way["total"] or 0)
    spec = None
    if purpose == Upload.Purpose.VALIDATION:
        spec = dataset.spec()  # read exactly like the training file
    elif shape:
        spec = DataSpec(fmt, shape, dict(mapping or {}), text_split)
    upload = Upload.objects.create(
        owner=owner,
        project=project,
        dataset=dataset,
        purpose=purpose,
        filename=filename,
        file_format=fmt,
        size=size,
        form=form,
        streamed=streamable(fmt, spec.text_split if spec else text_split),
        spec=asdict(spec) if spec else None,
    )
    upload.path.parent.mkdir(parents=True, exist_ok=True)
    upload.path.touch()
    return upload


class UploadConflict(Exception):
    """A piece at another offset than the server's (or for an upload no longer receiving)."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        super().__init__(f"upload {upload.pk} holds {upload.received} bytes ({upload.status})")


@dataclass
class _Written:
    newlines: int
    last_newline: int  # offset in the file just after the piece's last newline, or -1


def receive(upload: Upload, offset: int, body: BinaryIO, length: int) -> Upload:
    """Append ``length`` bytes of ``body`` at ``offset``, then check the rows they complete.

    Returns the upload as it now stands: still receiving (``received`` moved on, or not
    for a piece it held already), or failed with the problems of its rows (the file is
    then gone). Raises :class:`UploadConflict` for another offset than the server's, and
    ValueError for more bytes than announced or a body shorter than ``length``.
    """
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.status != UploadStatus.RECEIVING:
            raise UploadConflict(locked)
        if offset != locked.received:
            if offset < locked.received and offset + length <= locked.received:
                return locked  # a piece sent again (its answer was lost): stored once
            raise UploadConflict(locked)
        if offset + length > locked.size:
            raise ValueError(f"the file was announced as {locked.size} bytes")
        written = _append(locked, offset, body, length)
        locked.received = offset + length
        if locked.streamed:
            _check_new_rows(locked, written)
        if locked.status == UploadStatus.RECEIVING:
            locked.save()
    if locked.status == UploadStatus.FAILED:
        locked.path.unlink(missing_ok=True)
    return locked


def _append(upload: Upload, offset: int, body: BinaryIO, length: int) -> _Written:
    written = _Written(0, -1)
    with open(upload.path, "r+b") as out:
        out.seek(offset)
        out.truncate()  # bytes past the held offset were never acknowledged
        left = length
        while left:
            piece = body.read(min(left, _PIECE))
            if not piece:
                out.truncate(offset)
                raise ValueError(f"the piece ended after {length - left} of {length} bytes")
            out.write(piece)
            newline = piece.rfind(b"\n")
            if newline >= 0:
                written.newlines += piece.count(b"\n")
                written.last_newline = offset + (length - left) + newline + 1
            left -= len(piece)
    return written


def _check_new_rows(upload: Upload, written: _Written) -> None:
    """Check the rows the piece completed (up to its last newline, or to the end of the
    file with the last piece); fail the upload on any problem."""
    complete = upload.received == upload.size
    end = upload.size if complete else written.last_newline
    if end <= upload.checked_bytes:
        if upload.received - upload.checked_bytes > MAX_RECORD_BYTES:  # no line end in sight
            _refuse(upload, DatasetError([too_long(upload.checked_lines + 1)]))
        return
    start, first_line = upload.checked_bytes, upload.checked_lines + 1
    lines = written.newlines + (1 if complete and written.last_newline != end else 0)
    spec = upload.data_spec()
    args = (upload.path, upload.file_format, _text_split(upload, spec), start, end, first_line)
    if not upload.columns:
        try:
            inspection = inspect_region(*args)
        except DatasetError as exc:
            if exc.problems[0].line is None and "empty" in exc.problems[0].message:
                inspection = None  # only blank lines so far
            else:
                _refuse(upload, exc)
                return
        if inspection is not None:
            upload.columns = inspection.columns
            if spec is None:
                if inspection.shape is None:
                    unknown = Problem(None, None, datasets.unrecognised(inspection.columns))
                    _refuse(upload, DatasetError(inspection.problems or [unknown]))
                    return
                spec = DataSpec(upload.file_format, inspection.shape, inspection.mapping, args[2])
                upload.spec = asdict(spec)
    if spec is None:
        upload.checked_bytes, upload.checked_lines = end, upload.checked_lines + lines
        return
    keep = datasets.PREVIEW_ROWS - len(upload.preview)
    scan = scan_region(upload.path, spec, start, end, first_line, keep=keep)
    if scan.total:
        _refuse(upload, DatasetError(scan.problems, scan.total))
        return
    upload.row_count += scan.rows
    upload.preview += [datasets.preview_row(r) for r in scan.records]
    upload.checked_bytes, upload.checked_lines = end, upload.checked_lines + lines


def _text_split(upload: Upload, spec: DataSpec | None) -> str:
    return spec.text_split if spec else upload.form.get("text_split") or "line"


def problem_lines(exc: DatasetError) -> list[str]:
    lines = [str(p) for p in exc.problems]
    if exc.total > len(lines):
        lines.append(f"… and {exc.total - len(lines)} more problems")
    return lines


def _refuse(upload: Upload, exc: DatasetError) -> None:
    upload.fail("the file does not fit", problems=problem_lines(exc))


def checks_in_request(upload: Upload) -> bool:
    """Whether storing the complete file is quick enough for the request: its rows were
    checked as they came, or it is small."""
    return upload.streamed or upload.size <= settings.UPLOAD_CHECK_IN_REQUEST_MB * 2**20


def store(upload: Upload, on_progress: Callable[[int], None] | None = None) -> Dataset:
    """Store the complete file of a running upload as what it is for; raises DatasetError
    (and stores nothing) when it does not fit. The file is consumed either way."""
    source = upload.path
    try:
        if upload.purpose == Upload.Purpose.VALIDATION:
            if not upload.streamed:
                rows = versions.check_validation_file(upload.dataset, source, on_progress)
            elif upload.row_count:
                rows = upload.row_count
            else:
                raise file_error(EMPTY_MESSAGES[upload.file_format])
            return versions.set_validation_file(upload.dataset, source, rows)
        checked = _checked(upload, on_progress)
        if upload.purpose == Upload.Purpose.REPLACEMENT:
            return versions.replace_file(upload.dataset, checked)
        name = upload.form.get("name", "").strip() or upload.filename
        return datasets.store_checked(upload.project, checked, name)
    finally:
        source.unlink(missing_ok=True)


def _checked(upload: Upload, on_progress: Callable[[int], None] | None) -> datasets.Checked:
    if not upload.streamed:
        spec = upload.data_spec()
        shape, mapping = (spec.shape, spec.mapping) if spec else ("", {})
        text_split = upload.form.get("text_split") or "line"
        return datasets.check_received(
            upload.path, upload.file_format, shape, mapping, text_split, on_progress
        )
    if upload.row_count == 0 or upload.spec is None:
        raise file_error(EMPTY_MESSAGES[upload.file_format])
    spec = upload.data_spec()
    assert spec is not None
    return datasets.Checked(upload.path, spec, upload.row_count, upload.preview, upload.columns)


def clean_abandoned(now=None) -> int:
    """Remove uploads untouched for ``UPLOAD_ABANDONED_HOURS`` (finished ones are only
    history by then) and stray temporary files as old; returns the uploads removed."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.UPLOAD_ABANDONED_HOURS)
    stale = list(Upload.objects.filter(updated__lt=cutoff))
    for upload in stale:
        upload.path.unlink(missing_ok=True)
    Upload.objects.filter(pk__in=[u.pk for u in stale]).delete()
    active = Upload.objects.filter(status__in=ACTIVE).only("uid", "file_format")
    live = {upload.path.name for upload in active}
    for path in datasets.tmp_dir().iterdir():
        if path.name not in live and path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d abandoned uploads", len(stale))
    return len(stale)
