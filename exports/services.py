"""Workflows of the exports app. Enqueues happen after commit, only here."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User
from exports import events, secrets
from exports.actors import push_export, run_export
from exports.models import Export, HubPush, HubToken
from exports.sources import export_model_dir
from projects.datasets import check_quota_for
from training.engine.data.records import DatasetError
from training.engine.export.support import GgufExportError, gguf_config
from training.models import Run


class ExportRefused(Exception):
    """An export or push that cannot start; the message is for the user."""


def _check_room(owner: User) -> None:
    try:
        check_quota_for(owner, 1)
    except DatasetError as exc:
        raise ExportRefused(str(exc)) from exc


def create_export(
    run: Run, kind: str, dtype: str = "", quant: str = "", enqueue: bool = True
) -> Export:
    """Queue an export of a completed (or timed-out) run's adapter, or of the model a
    pretraining run saved, on the CPU worker (``enqueue=False``: the caller runs it, as
    ``manage.py export`` does)."""
    if run.is_pretraining:
        if not run.has_model:
            raise ExportRefused(
                _("Exports open when the pretraining run has completed and saved its model.")
            )
        if kind == Export.Kind.ADAPTER:
            raise ExportRefused(
                _("A pretrained model has no LoRA adapter: export it merged or as GGUF.")
            )
    elif not run.has_adapter:
        raise ExportRefused(_("Exports open when the run has completed and saved its adapter."))
    if kind not in Export.Kind.values:
        raise ExportRefused(_("Unknown export kind."))
    if kind == Export.Kind.MERGED and dtype not in Export.Dtype.values:
        raise ExportRefused(_("Choose bf16, fp16 or fp32 for the merged model."))
    if kind == Export.Kind.GGUF and quant not in Export.Quant.values:
        raise ExportRefused(_("Choose a GGUF type."))
    if kind == Export.Kind.GGUF:
        try:
            gguf_config(export_model_dir(run))
        except GgufExportError as exc:
            raise ExportRefused(str(exc)) from exc
    _check_room(run.owner)
    with transaction.atomic():
        export = Export.objects.create(
            run=run,
            owner=run.owner,
            kind=kind,
            dtype=dtype if kind == Export.Kind.MERGED else "",
            quant=quant if kind == Export.Kind.GGUF else "",
        )
        if enqueue:
            transaction.on_commit(lambda: run_export.send(export.pk))
    events.publish(run.pk)
    return export


def adapter_export(run: Run) -> Export:
    """The run's adapter export for the run page's "Download adapter": the finished or
    in-progress one when there is one, else a new one (the adapter leaves the lab only
    through the export list, verified and counted against the quota like any export)."""
    for export in run.exports.filter(kind=Export.Kind.ADAPTER):
        if export.is_active or export.downloadable:
            return export
    return create_export(run, Export.Kind.ADAPTER)


def delete_export(export: Export) -> None:
    """Delete an export and its files; a worker still on it stops at its next report."""
    export.cancel()
    run_id = export.run_id
    with transaction.atomic():
        Export.objects.filter(pk=export.pk).delete()
        transaction.on_commit(export.remove_files)
    events.publish(run_id)


def save_hub_token(owner: User, token: str) -> HubToken:
    token = token.strip()
    hub_token, _created = HubToken.objects.update_or_create(
        owner=owner, defaults={"encrypted": secrets.encrypt(token), "hint": token[-4:]}
    )
    return hub_token


def delete_hub_token(owner: User) -> None:
    HubToken.objects.filter(owner=owner).delete()


def push_to_hub(export: Export, repo_id: str, private: bool) -> HubPush:
    if not export.downloadable:
        raise ExportRefused(_("Only a finished, verified export can be pushed."))
    if not HubToken.objects.filter(owner_id=export.owner_id).exists():
        raise ExportRefused(_("Save your Hugging Face token first."))
    with transaction.atomic():
        push = HubPush.objects.create(
            export=export, owner=export.owner, repo_id=repo_id.strip(), private=private
        )
        transaction.on_commit(lambda: push_export.send(push.pk))
    events.publish(export.run_id)
    return push
