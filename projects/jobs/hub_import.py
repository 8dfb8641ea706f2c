"""Hub dataset imports on the CPU worker: the glue between DatasetImport rows, the
engine's Hub code and the lab's dataset checks. All or nothing: a failure at any step
leaves no dataset, no file and no temporary folder."""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid

from django.conf import settings
from django.db import connection

from projects import datasets, events
from projects.jobs.check import compute_new_statistics
from projects.models import DatasetImport
from training.engine.data import hub
from training.engine.data.records import DatasetError

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.9


class Cancelled(Exception):
    """The import was cancelled, or its project deleted, while it ran."""


def hub_token(owner_id: int) -> str | None:
    """The owner's own Hub token, saved on the Exports page, or None."""
    from exports import secrets
    from exports.models import HubToken

    stored = HubToken.objects.filter(owner_id=owner_id).first()
    return secrets.decrypt(stored.encrypted) if stored is not None else None


def run_import(import_id: int) -> None:
    """Claim one import and do it; a second delivery does nothing."""
    item = DatasetImport.objects.select_related("project__owner").filter(pk=import_id).first()
    if item is None or not item.claim():
        return
    events.publish_import(item.pk)
    last = {"t": 0.0}

    def report(**progress) -> None:
        # Called from the download's progress thread too: it needs its own connection.
        now = time.monotonic()
        if now - last["t"] < PROGRESS_EVERY_S:
            return
        last["t"] = now
        alive = item.report(**progress)
        if threading.current_thread().name == "hub-progress":
            connection.close()
        if alive:
            events.publish_import(item.pk)
        elif threading.current_thread().name != "hub-progress":
            raise Cancelled

    folder = datasets.tmp_dir() / f"hub-{uuid.uuid4().hex}"
    combined = None
    try:
        token = hub_token(item.owner_id)
        plan = hub.plan(
            item.repo_id,
            config=item.config,
            split=item.split,
            revision=item.revision or None,
            token=token,
        )
        limit = settings.DATASET_MAX_UPLOAD_MB * 2**20
        if plan.total_bytes > limit:
            raise datasets.too_big(plan.total_bytes)
        datasets.check_quota_for(item.owner, plan.total_bytes)
        if not item.report(
            commit=plan.commit or "",
            config=plan.config,
            files=[f.name for f in plan.files],
            bytes_total=plan.total_bytes,
        ):
            raise Cancelled
        paths = hub.fetch(
            plan,
            folder,
            lambda done, total: report(bytes_done=done, bytes_total=total),
            token=token,
        )
        if not item.report(bytes_done=plan.total_bytes):
            raise Cancelled
        combined, fmt = hub.combine(plan, paths, datasets.tmp_dir())
        shutil.rmtree(folder, ignore_errors=True)
        checked = datasets.check_received(
            combined, fmt, on_progress=lambda rows: report(rows_checked=rows)
        )
        combined = None  # store_checked consumes it, stored or not
        dataset = datasets.store_checked(item.project, checked, item.name)
    except Cancelled:
        logger.info("import %s: cancelled while it ran", import_id)
    except (hub.HubDatasetError, DatasetError) as exc:
        item.fail(_problem_text(exc))
    except Exception as exc:
        logger.exception("import %s failed", import_id)
        item.fail(f"{type(exc).__name__}: {exc}")
    else:
        describe(dataset, item)
        if not item.finish(result=dataset, rows_checked=dataset.row_count):
            datasets.delete_dataset(dataset)  # cancelled at the last moment
        else:
            events.publish_import(item.pk)
            compute_new_statistics(dataset)
            return
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if combined is not None:
            combined.unlink(missing_ok=True)
    events.publish_import(item.pk)


def describe(dataset, item: DatasetImport) -> None:
    where = f"{item.repo_id} (config {item.config or 'default'}, split {item.split}"
    where += f", commit {item.commit[:12]})" if item.commit else ")"
    dataset.description = f"Imported from the Hugging Face Hub: {where}"[:2000]
    dataset.save(update_fields=["description"])


def _problem_text(exc: Exception) -> str:
    if isinstance(exc, DatasetError):
        return "; ".join(str(p) for p in exc.problems[:5]) or str(exc)
    return str(exc)
