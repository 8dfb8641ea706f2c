"""Projects, and the model catalog with operators' downloads."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from projects import datasets, services
from projects.access import get_project_for_user
from projects.catalog_rows import BATCH, SEQ_LEN, catalog_rows
from projects.forms import DatasetUploadForm, ProjectForm, add_dataset_problems
from projects.models import ModelDownload, Project
from slmlab.htmx import redirect as htmx_redirect
from training.capacity import target_device
from training.engine.data.records import DatasetError
from training.engine.data.samples import SAMPLES
from training.engine.models.catalog import get_model


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.filter(owner=request.user)
    return render(
        request,
        "projects/project_list.html",
        {"projects": projects, "form": ProjectForm(owner=request.user)},
    )


@login_required
@require_POST
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST, owner=request.user)
    if not form.is_valid():
        if request.htmx:
            return render(request, "projects/project_list.html#create_form", {"form": form})
        projects = Project.objects.filter(owner=request.user)
        return render(request, "projects/project_list.html", {"projects": projects, "form": form})
    project = form.save()
    messages.success(request, _("Project “%(name)s” created.") % {"name": project.name})
    return htmx_redirect(request, project.get_absolute_url())


@login_required
@vary_on_headers("HX-Request")
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    return render(request, "projects/project_detail.html", _project_context(project))


def _project_context(project: Project, upload_form: DatasetUploadForm | None = None) -> dict:
    return {
        "project": project,
        "samples": list(datasets.SAMPLE_LABELS.items()),
        "datasets": project.datasets.all(),
        "runs": project.runs.select_related("base_model", "dataset"),
        "upload_form": upload_form or DatasetUploadForm(),
    }


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def project_rename(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    form = ProjectForm(request.POST or None, instance=project, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        if request.htmx:
            return render(request, "projects/project_detail.html#header", {"project": project})
        messages.success(request, _("Project renamed."))
        return redirect(project)
    template = "projects/project_detail.html"
    if request.htmx:
        template += "#rename_form"
    project.refresh_from_db()
    return render(request, template, {**_project_context(project), "form": form, "editing": True})


@login_required
@require_POST
def project_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    name = project.name
    if any(run.is_active for run in project.runs.all()):
        messages.error(
            request,
            _("“%(name)s” has queued, running or interrupted runs: cancel them first.")
            % {"name": name},
        )
        return htmx_redirect(request, project.get_absolute_url())
    datasets.delete_project(project)
    messages.success(request, _("Project “%(name)s” deleted.") % {"name": name})
    return htmx_redirect(request, reverse("projects:list"))


@login_required
@require_POST
def dataset_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    form = DatasetUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            dataset = datasets.store_upload(
                project,
                form.cleaned_data["file"],
                form.dataset_name(),
                shape=form.cleaned_data["shape"],
                mapping=form.cleaned_data["mapping"],
                text_split=form.cleaned_data["text_split"],
            )
        except DatasetError as exc:
            add_dataset_problems(form, "file", exc)
        else:
            services.request_stats(dataset)
            messages.success(
                request,
                _(
                    "Dataset “%(name)s” added: %(rows)d rows, read as %(shape)s. "
                    "Check the shape and the preview below."
                )
                % {
                    "name": dataset.name,
                    "rows": dataset.row_count,
                    "shape": dataset.get_shape_display(),
                },
            )
            return htmx_redirect(request, dataset.get_absolute_url())
    if request.htmx:
        return render(
            request,
            "projects/_project_sections.html#upload_form",
            {"project": project, "upload_form": form},
        )
    return render(request, "projects/project_detail.html", _project_context(project, form))


@login_required
@require_POST
def dataset_sample(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    key = request.POST.get("sample", "json-answer")
    if key not in SAMPLES:
        raise Http404("no such sample")
    dataset = datasets.store_sample(project, key)
    services.request_stats(dataset)
    messages.success(
        request, _("Sample dataset added: %(rows)d rows.") % {"rows": dataset.row_count}
    )
    return htmx_redirect(request, dataset.get_absolute_url())


@login_required
def model_catalog(request: HttpRequest) -> HttpResponse:
    device = target_device()
    downloads = {}
    if request.user.is_staff:
        for item in ModelDownload.objects.order_by("created"):
            downloads[item.repo_id] = item  # the latest per repository
    return render(
        request,
        "projects/catalog.html",
        {
            "rows": [
                (row, downloads.get(row.repo_id))
                for row in catalog_rows(device.kind, device.cpu_bf16)
            ],
            "device_name": device.name,
            "memory_mb": device.memory_mb,
            "seq_len": SEQ_LEN,
            "batch": BATCH,
        },
    )


def _staff_only(request: HttpRequest) -> None:
    # Models in the store are shared by everyone and large: operators choose them.
    if not request.user.is_staff:
        raise Http404("Only operators download models.")


@login_required
@require_POST
def model_download(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    try:
        entry = get_model(request.POST.get("key", ""))
    except KeyError as exc:
        raise Http404("Not a catalog model.") from exc
    download = services.request_download(request.user, entry)
    if request.htmx:
        return render(request, "projects/_download.html", {"download": download, "key": entry.key})
    return redirect("catalog")


@login_required
def model_download_status(request: HttpRequest, download_id: int) -> HttpResponse:
    _staff_only(request)
    download = get_object_or_404(ModelDownload, pk=download_id)
    return render(request, "projects/_download.html", {"download": download})
