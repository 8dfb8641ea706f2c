"""Websocket pushes of a run's export list (group ``run-<id>-exports``)."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string

from exports.models import Export, HubToken
from exports.sources import exportable, gguf_refusal
from slmlab.consumers import push_to_group
from training.models import Run


def exports_group(run_id: int) -> str:
    return f"run-{run_id}-exports"


def panel_context(run: Run) -> dict:
    exports = list(run.exports.prefetch_related("pushes"))
    adapter = [e for e in exports if e.kind == Export.Kind.ADAPTER]
    can_export = exportable(run)
    kinds = Export.Kind.choices
    if run.is_pretraining:  # its own weights: nothing to export as an adapter
        kinds = [(value, label) for value, label in kinds if value != Export.Kind.ADAPTER]
    return {
        "run": run,
        "exports": exports,
        "can_export": can_export,
        "gguf_refusal": gguf_refusal(run) if can_export else "",
        # The "Download adapter" action: the adapter export it downloads or waits for.
        "adapter_export": next((e for e in adapter if e.downloadable or e.is_active), None),
        "has_hub_token": HubToken.objects.filter(owner_id=run.owner_id).exists(),
        "kinds": kinds,
        "dtypes": Export.Dtype.choices,
        "quants": Export.Quant.choices,
    }


def render_list(run: Run) -> str:
    return render_to_string("exports/_panel.html#export_list", panel_context(run))


def publish(run_id: int) -> None:
    def send() -> None:
        run = Run.objects.filter(pk=run_id).first()
        if run is not None:
            push_to_group(exports_group(run_id), render_list(run))

    transaction.on_commit(send)
