"""Content changes to datasets: in place while no run used the dataset, else a new version.

A run's dataset row never changes (``Dataset.save`` refuses it), so every run keeps
pointing at exactly what it trained on. Name and description are not content.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from projects import datasets
from projects.models import Dataset, DatasetStats, dataset_upload_path, validation_upload_path
from training.engine.data.records import DatasetError, DataSpec, scan_dataset


def _media(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # same content, no extra disk; each name deletes alone
    except OSError:
        shutil.copyfile(source, target)


def _editable(dataset: Dataset) -> tuple[Dataset, list[Path]]:
    """The row to change: ``dataset`` itself if unused, else a new version (files linked).

    Also returns the files a failed change must remove.
    """
    locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
    datasets.require_file(locked)
    if not locked.in_use:
        return locked, []
    latest = Dataset.objects.filter(lineage=locked.lineage).aggregate(v=Max("version"))["v"]
    fresh = Dataset.objects.get(pk=locked.pk)
    fresh.pk = None
    fresh._state.adding = True
    fresh._loaded_content = None
    fresh.uid = uuid.uuid4()
    fresh.version = latest + 1
    fresh.parent = locked
    created: list[Path] = []
    fresh.file.name = dataset_upload_path(fresh, "")
    _link_or_copy(_media(locked.file.name), _media(fresh.file.name))
    created.append(_media(fresh.file.name))
    if locked.validation_file:
        fresh.validation_file.name = validation_upload_path(fresh, "")
        _link_or_copy(_media(locked.validation_file.name), _media(fresh.validation_file.name))
        created.append(_media(fresh.validation_file.name))
    fresh.save()
    return fresh, created


def _copy_stats(source: Dataset, target: Dataset) -> None:
    """Statistics describe the main file; a version with the same file keeps them."""
    for stats in source.stats.filter(status=DatasetStats.Status.DONE):
        stats.pk = None
        stats._state.adding = True
        stats.dataset = target
        stats.save()


@dataclass
class _Edit:
    target: Dataset  # the row to change
    created: list[Path]  # files made for it: removed if the change fails
    removed: list[Path] = field(default_factory=list)  # files to delete once it commits


@contextmanager
def _editing(dataset: Dataset) -> Iterator[_Edit]:
    """A change in one transaction: to ``dataset`` if unused, else to a new version; on an
    error nothing of it is left, and replaced files go only once it committed."""
    with transaction.atomic():
        target, created = _editable(dataset)
        edit = _Edit(target, created)
        try:
            yield edit
            if target.pk != dataset.pk:
                _copy_stats(dataset, target)
        except BaseException:
            _unlink(created)
            raise
        transaction.on_commit(lambda: _unlink(edit.removed))


def set_split(dataset: Dataset, val_percent: int, seed: int) -> Dataset:
    """Validation as a seeded share of the rows (drops any validation file)."""
    unchanged = (dataset.val_percent, dataset.split_seed, dataset.validation_file.name)
    if unchanged == (val_percent, seed, ""):
        return dataset  # nothing to change: no new version for it
    with _editing(dataset) as edit:
        target = edit.target
        if target.validation_file:
            edit.removed.append(_media(target.validation_file.name))
        target.val_percent = val_percent
        target.split_seed = seed
        target.validation_file.name = ""
        target.validation_row_count = 0
        target.save()
    return target


def change_settings(
    dataset: Dataset, spec: DataSpec, on_progress: Callable[[int], None] | None = None
) -> Dataset:
    """New shape, mapping or template: in place while unused, else as a new version.

    Every row of the file, and of the validation file, is checked with the new settings
    first (``on_progress(rows)`` as it goes: this runs on a worker); a problem raises
    :class:`DatasetError` and changes nothing. The old statistics go: they tokenized the
    rows as the old template rendered them (the caller has new ones computed).
    """
    if spec == dataset.spec():
        return dataset  # nothing to change: no new version, no new statistics
    count, preview = scan_dataset(
        dataset.file.path, spec, keep=datasets.PREVIEW_ROWS, on_progress=on_progress
    )
    if dataset.validation_file:
        try:
            scan_dataset(dataset.validation_file.path, spec, keep=0)
        except DatasetError as exc:
            problems = [replace(p, unit=f"validation file {p.unit}") for p in exc.problems]
            raise DatasetError(problems, exc.total) from exc
    with transaction.atomic():
        target, created = _editable(dataset)
        try:
            datasets.apply_settings(target, spec, count, preview)
            target.stats.all().delete()
        except BaseException:
            _unlink(created)
            raise
    return target


def check_validation_file(
    dataset: Dataset, source: Path, on_progress: Callable[[int], None] | None = None
) -> int:
    """The rows of a validation file read exactly like the training file (same format,
    shape, mapping and template); raises DatasetError if any does not fit."""
    return scan_dataset(source, dataset.spec(), keep=0, on_progress=on_progress)[0]


def set_validation_file(dataset: Dataset, source: Path, rows: int | None = None) -> Dataset:
    """A separate validation file (``rows`` of them when already checked, else checked
    here); raises DatasetError if bad. ``source`` is consumed."""
    try:
        count = check_validation_file(dataset, source) if rows is None else rows
        with _editing(dataset) as edit:
            target = edit.target
            old = _media(target.validation_file.name) if target.validation_file else None
            target.validation_file.name = validation_upload_path(target, "")
            final = _media(target.validation_file.name)
            if old is not None and old != final:
                edit.removed.append(old)
            target.validation_row_count = count
            target.save()
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, final)
        return target
    finally:
        source.unlink(missing_ok=True)


def replace_file(dataset: Dataset, checked: datasets.Checked) -> Dataset:
    """New rows (a validated file, consumed) for the dataset; raises DatasetError (and
    changes nothing) if they do not fit the storage quota.

    The old statistics go with the old rows (the caller has new ones computed)."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        datasets.require_file(locked)  # its validation file went with it
        fresh = datasets.store_checked(locked.project, checked, locked.name)
        try:
            if locked.in_use:
                target = _as_new_version(fresh, locked)
                removed: list[Path] = []
            else:
                target, removed = _adopt(fresh, locked)
        except BaseException:
            _media(fresh.file.name).unlink(missing_ok=True)
            raise
        transaction.on_commit(lambda: _unlink(removed))
    return target


def _as_new_version(fresh: Dataset, used: Dataset) -> Dataset:
    latest = Dataset.objects.filter(lineage=used.lineage).aggregate(v=Max("version"))["v"]
    fresh.lineage = used.lineage
    fresh.version = latest + 1
    fresh.parent = used
    fresh.description = used.description
    fresh.val_percent = used.val_percent
    fresh.split_seed = used.split_seed
    if used.validation_file:
        fresh.validation_file.name = validation_upload_path(fresh, "")
        _link_or_copy(_media(used.validation_file.name), _media(fresh.validation_file.name))
        fresh.validation_row_count = used.validation_row_count
    fresh.save()
    return fresh


def _adopt(fresh: Dataset, unused: Dataset) -> tuple[Dataset, list[Path]]:
    """Move the freshly stored file and its facts into the unused row; drop the fresh row."""
    removed = [_media(unused.file.name)]
    # The new file's own facts; the user's template choice stays.
    for name in (
        "file_format",
        "shape",
        "mapping",
        "columns",
        "text_split",
        "row_count",
        "size_bytes",
        "preview",
    ):
        setattr(unused, name, getattr(fresh, name))
    unused.file.name = fresh.file.name
    unused.save()
    unused.stats.all().delete()  # they described the old rows
    Dataset.objects.filter(pk=fresh.pk).delete()  # the row only; its file is now unused's
    return unused, removed


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
