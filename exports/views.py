from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from exports import services
from exports.events import panel_context
from exports.models import Export, HubToken
from slmlab.streams import stream_file, stream_folder_zip
from training.models import Run

REPO_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _run_for_user(request: HttpRequest, run_id: int) -> Run:
    return get_object_or_404(Run, pk=run_id, owner=request.user)


def _export_for_user(request: HttpRequest, export_id: int) -> Export:
    return get_object_or_404(Export.objects.select_related("run"), pk=export_id, owner=request.user)


def _list(request: HttpRequest, run: Run) -> HttpResponse:
    if request.htmx:
        return render(request, "exports/_panel.html#export_list", panel_context(run))
    return redirect(run)


@login_required
def export_list(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_for_user(request, run_id)
    return render(request, "exports/_panel.html#export_list", panel_context(run))


@login_required
@require_POST
def export_create(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_for_user(request, run_id)
    try:
        services.create_export(
            run,
            request.POST.get("kind", ""),
            dtype=request.POST.get("dtype", ""),
            quant=request.POST.get("quant", ""),
        )
    except services.ExportRefused as exc:
        messages.error(request, str(exc))
    return _list(request, run)


@login_required
@require_POST
def export_adapter(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page's "Download adapter": opens the adapter export (downloads it once it
    is verified), creating it the first time."""
    run = _run_for_user(request, run_id)
    try:
        export = services.adapter_export(run)
    except services.ExportRefused as exc:
        messages.error(request, str(exc))
        return _list(request, run)
    if export.downloadable:
        url = reverse("exports:download", args=[export.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _list(request, run)


@login_required
@require_POST
def export_delete(request: HttpRequest, export_id: int) -> HttpResponse:
    export = _export_for_user(request, export_id)
    run = export.run
    services.delete_export(export)
    return _list(request, run)


@login_required
def export_download(request: HttpRequest, export_id: int) -> StreamingHttpResponse:
    """The export as one zip (a GGUF with its Modelfile), streamed as it is read."""
    export = _export_for_user(request, export_id)
    if not export.downloadable:
        raise Http404("This export is not ready.")
    return stream_folder_zip(export.folder, f"{export.base_name}.zip")


@login_required
def export_gguf_file(request: HttpRequest, export_id: int) -> StreamingHttpResponse:
    """Only the .gguf file of a GGUF export (for llama.cpp)."""
    export = _export_for_user(request, export_id)
    if not export.downloadable or export.kind != Export.Kind.GGUF:
        raise Http404("This export has no GGUF file.")
    return stream_file(export.gguf_path, export.gguf_path.name)


@login_required
@require_POST
def export_push(request: HttpRequest, export_id: int) -> HttpResponse:
    export = _export_for_user(request, export_id)
    repo_id = request.POST.get("repo_id", "").strip()
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(p and set(p) <= REPO_NAME_CHARS for p in parts):
        messages.error(request, _("A repository is named like your-name/model-name."))
    else:
        try:
            services.push_to_hub(export, repo_id, private=request.POST.get("private") == "on")
        except services.ExportRefused as exc:
            messages.error(request, str(exc))
    return _list(request, export.run)


@login_required
@require_http_methods(["GET", "POST"])
def hub_token(request: HttpRequest) -> HttpResponse:
    """Save (or replace) the user's Hub token; it is never shown again, only its end."""
    if request.method == "POST":
        token = request.POST.get("token", "").strip()
        if not token.startswith("hf_") or len(token) < 8:
            messages.error(request, _("A Hugging Face token starts with hf_."))
        else:
            services.save_hub_token(request.user, token)
            messages.success(request, _("Token saved. It is stored encrypted and not shown again."))
            return redirect("exports:hub_token")
    saved = HubToken.objects.filter(owner=request.user).first()
    return render(request, "exports/hub_token.html", {"saved": saved})


@login_required
@require_POST
def hub_token_delete(request: HttpRequest) -> HttpResponse:
    services.delete_hub_token(request.user)
    messages.success(request, _("Token deleted."))
    return redirect("exports:hub_token")
