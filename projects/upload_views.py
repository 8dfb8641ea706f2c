"""Dataset files sent by the page in pieces (the protocol: projects/uploads.py).

Every answer meant for the page is either JSON (where to send the next piece, where to
go next) or the upload form re-rendered with its errors, which the page swaps in.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from projects import services, uploads
from projects.access import get_dataset_for_user, get_project_for_user
from projects.dataset_forms import ReplaceFileForm, SplitForm
from projects.dataset_views import announce_version
from projects.forms import DatasetUploadForm, add_dataset_problems
from projects.models import Dataset, Project, Upload, UploadStatus
from training.engine.data.formats import format_for_name
from training.engine.data.records import DatasetError

Purpose = Upload.Purpose
# Where each kind of upload's form lives, its file field and the name it has there.
_SECTIONS = "projects/_project_sections.html"
_MANAGE = "projects/_dataset_manage.html"
_FORMS = {
    Purpose.DATASET: (f"{_SECTIONS}#upload_form", "file", "upload_form"),
    Purpose.VALIDATION: (f"{_MANAGE}#split_form", "validation_file", "split_form"),
    Purpose.REPLACEMENT: (f"{_MANAGE}#replace_form", "file", "replace_form"),
}
_NOT_FORM_FIELDS = ("csrfmiddlewaretoken", "filename", "size")


@dataclass
class DeclaredFile:
    """The file the page is about to send: its name and size, for the form's checks."""

    name: str
    size: int


def _bound_form(purpose: str, data, declared: DeclaredFile, dataset: Dataset | None):
    field = _FORMS[purpose][1]
    files = {field: declared} if declared.name else {}
    if purpose == Purpose.VALIDATION:
        return SplitForm(data, files, dataset=dataset)
    if purpose == Purpose.REPLACEMENT:
        return ReplaceFileForm(data, files)
    return DatasetUploadForm(data, files)


def _render_form(
    request: HttpRequest, purpose: str, project: Project, dataset: Dataset | None, form
) -> HttpResponse:
    template, _field, name = _FORMS[purpose]
    context = {"project": project, "dataset": dataset, name: form}
    return render(request, template, context, status=422)


@login_required
@require_POST
def upload_start(request: HttpRequest, project_id: int) -> HttpResponse:
    """Open the upload of a new dataset's file."""
    project = get_project_for_user(request, project_id)
    return _start(request, project, None, Purpose.DATASET)


@login_required
@require_POST
def validation_upload_start(request: HttpRequest, project_id: int, dataset_id: int):
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    return _start(request, dataset.project, dataset, Purpose.VALIDATION)


@login_required
@require_POST
def replacement_upload_start(request: HttpRequest, project_id: int, dataset_id: int):
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    return _start(request, dataset.project, dataset, Purpose.REPLACEMENT)


def _start(
    request: HttpRequest, project: Project, dataset: Dataset | None, purpose: str
) -> HttpResponse:
    try:
        size = max(0, int(request.POST.get("size", "")))
    except ValueError:
        size = 0
    declared = DeclaredFile(request.POST.get("filename", "").strip()[:255], size)
    form = _bound_form(purpose, request.POST, declared, dataset)
    field = _FORMS[purpose][1]
    if form.is_valid() and not declared.name:
        form.add_error(field, forms.Field.default_error_messages["required"])
    if form.is_valid():
        cleaned = form.cleaned_data
        fmt = dataset.file_format if purpose == Purpose.VALIDATION else None
        try:
            upload = uploads.start(
                request.user,
                project,
                purpose,
                declared.name,
                declared.size,
                fmt or format_for_name(declared.name) or "jsonl",
                {k: v for k, v in request.POST.items() if k not in _NOT_FORM_FIELDS},
                dataset=dataset,
                shape=cleaned.get("shape", ""),
                mapping=cleaned.get("mapping"),
                text_split=cleaned.get("text_split") or "line",
            )
        except DatasetError as exc:
            add_dataset_problems(form, field, exc)
        else:
            url = reverse("projects:upload", args=[project.pk, upload.pk])
            state = {"url": url, "offset": 0, "chunk_size": settings.UPLOAD_CHUNK_BYTES}
            return JsonResponse(state, status=201)
    return _render_form(request, purpose, project, dataset, form)


def _get_upload_for_user(request: HttpRequest, project_id: int, upload_id: int) -> Upload:
    return get_object_or_404(
        Upload.objects.select_related("project", "dataset", "result"),
        pk=upload_id,
        project_id=project_id,
        owner=request.user,
    )


def _state(upload: Upload, status: int = 200) -> JsonResponse:
    state = {"offset": upload.received, "size": upload.size, "status": upload.status}
    return JsonResponse({**state, "chunk_size": settings.UPLOAD_CHUNK_BYTES}, status=status)


def _refused(request: HttpRequest, upload: Upload) -> HttpResponse:
    """The upload's form again, with the problems that ended it (422)."""
    declared = DeclaredFile(upload.filename, upload.size)
    form = _bound_form(upload.purpose, upload.form, declared, upload.dataset)
    form.is_valid()
    field = _FORMS[upload.purpose][1]
    for line in upload.problems or [upload.error]:
        form.add_error(field, line)
    return _render_form(request, upload.purpose, upload.project, upload.dataset, form)


@login_required
@require_http_methods(["GET", "PUT"])
def upload_piece(request: HttpRequest, project_id: int, upload_id: int) -> HttpResponse:
    """GET: how far the upload got. PUT: the piece at ``Upload-Offset``."""
    upload = _get_upload_for_user(request, project_id, upload_id)
    if request.method == "GET":
        return _state(upload)
    try:
        offset = int(request.headers.get("Upload-Offset", ""))
        length = int(request.headers.get("Content-Length", ""))
    except ValueError:
        return JsonResponse({"error": "expected Upload-Offset and Content-Length"}, status=400)
    if not 0 < length <= settings.UPLOAD_CHUNK_BYTES:
        limit = settings.UPLOAD_CHUNK_BYTES
        return JsonResponse({"error": f"a piece holds 1 to {limit} bytes"}, status=413)
    try:
        upload = uploads.receive(upload, offset, request, length)
    except uploads.UploadConflict as conflict:
        if conflict.upload.status == UploadStatus.FAILED:
            return _refused(request, conflict.upload)
        return _state(conflict.upload, status=409)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if upload.status == UploadStatus.FAILED:
        return _refused(request, upload)
    return _state(upload)


@login_required
@require_POST
def upload_finish(request: HttpRequest, project_id: int, upload_id: int) -> HttpResponse:
    """Store the complete file, or hand it to a worker; safe to send twice."""
    upload = _get_upload_for_user(request, project_id, upload_id)
    if upload.status == UploadStatus.RECEIVING and upload.received != upload.size:
        return _state(upload, status=409)
    before = upload.status
    upload = services.finish_upload(upload)
    if upload.status == UploadStatus.DONE:
        if before == UploadStatus.RECEIVING:
            _announce(request, upload)
        return JsonResponse({"redirect": upload.result.get_absolute_url()})
    if upload.status == UploadStatus.FAILED:
        return _refused(request, upload)
    return render(request, "projects/_upload.html", {"upload": upload}, status=202)


def _announce(request: HttpRequest, upload: Upload) -> None:
    dataset = upload.result
    if upload.purpose == Purpose.VALIDATION:
        announce_version(request, upload.dataset, dataset, _("Validation split saved."))
    elif upload.purpose == Purpose.REPLACEMENT:
        done = _("File replaced: %(rows)d rows.") % {"rows": dataset.row_count}
        announce_version(request, upload.dataset, dataset, done)
    else:
        facts = {"name": dataset.name, "rows": dataset.row_count}
        facts["shape"] = dataset.get_shape_display()
        added = _(
            "Dataset “%(name)s” added: %(rows)d rows, read as %(shape)s. "
            "Check the shape and the preview below."
        )
        messages.success(request, added % facts)
