"""Exports on the CPU worker: write into a temporary folder, verify, then publish.

The temporary folder is renamed to the export's folder only after its verification
passed and it fits the owner's storage quota; a failure removes it, and a crash leaves
only the temporary folder, which no download ever serves (and deleting the export or
its run removes it).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from exports import events
from exports.models import Export
from projects.datasets import check_quota_for
from slmlab.jobs import JobStatus
from training.engine.data.records import DatasetError
from training.engine.export import pipeline
from training.engine.export.chat_template import ChatTemplateError
from training.engine.export.llama import LlamaCppMissing
from training.engine.export.support import GgufExportError
from training.engine.export.verify import VerificationFailed

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The export was deleted or cancelled while the worker wrote it."""


def _work(export: Export, progress) -> dict:
    run = export.run
    out = export.temp_folder
    if run.is_pretraining:  # the model itself, with its tokenizer's chat template
        base, adapter, template, custom = run.model_dir, None, "model", ""
    else:
        base, adapter = Path(run.base_path), run.adapter_dir
        template, custom = run.dataset.template, run.dataset.custom_template
    if export.kind == Export.Kind.ADAPTER:
        return pipeline.export_adapter(adapter, out, progress)
    if export.kind == Export.Kind.MERGED:
        return pipeline.export_merged(
            base,
            adapter,
            out,
            export.dtype,
            template,
            custom,
            progress,  # type: ignore[arg-type]
        )
    return pipeline.export_gguf(
        base, adapter, out, export.quant, export.base_name, template, custom, progress
    )


def run_export(export_id: int) -> None:
    """Claim one export and do it; a second delivery of the message does nothing."""
    export = (
        Export.objects.select_related("run__base_model", "run__base_run", "run__dataset", "owner")
        .filter(pk=export_id)
        .first()
    )
    if export is None or not export.claim():
        return
    events.publish(export.run_id)

    def progress(fraction: float, stage: str) -> None:
        if not export.report(progress=round(fraction, 3), stage=stage[:200]):
            raise Cancelled
        events.publish(export.run_id)

    shutil.rmtree(export.temp_folder, ignore_errors=True)
    export.temp_folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = _work(export, progress)
        size = pipeline.folder_size(export.temp_folder)
        check_quota_for(export.owner, size)
    except BaseException as exc:  # the time limit too: never leave it "running"
        shutil.rmtree(export.temp_folder, ignore_errors=True)
        _failed(export, exc)
        if not isinstance(exc, Exception):
            raise
        return
    os.replace(export.temp_folder, export.folder)
    if not export.finish(size_bytes=size, verification=result, progress=1.0, stage="verified"):
        shutil.rmtree(export.folder, ignore_errors=True)  # deleted meanwhile
        return
    events.publish(export.run_id)


# Failures that are a reason for the owner, not a bug: the message says it all.
EXPECTED = (DatasetError, LlamaCppMissing, GgufExportError, ChatTemplateError)


def _failed(export: Export, exc: BaseException) -> None:
    if not Export.objects.filter(pk=export.pk, status=JobStatus.RUNNING).exists():
        logger.info("export %s: deleted or cancelled meanwhile; stopped", export.pk)
        return
    if isinstance(exc, VerificationFailed):
        message, report = str(exc), exc.report
    elif isinstance(exc, EXPECTED):  # refusals with their reason: no traceback, no class name
        message, report = str(exc), {}
    else:
        logger.exception("export %s failed", export.pk)
        message, report = f"{type(exc).__name__}: {exc}", {}
    export.fail(export.run.public_text(message), verification=report)
    events.publish(export.run_id)
