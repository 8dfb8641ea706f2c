from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from projects import datasets, services, versions
from projects.forms import DatasetSettingsForm, DatasetUploadForm, ProjectForm
from projects.models import BaseModel, Dataset, ModelDownload, Project
from training.engine.data import DatasetError
from training.engine.samples import SAMPLES


def _get_project_for_user(request: HttpRequest, project_id: int) -> Project:
    return get_object_or_404(Project, pk=project_id, owner=request.user)


def _get_dataset_for_user(request: HttpRequest, project_id: int, dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset, pk=dataset_id, project_id=project_id, owner=request.user)


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


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
    return _redirect(request, project.get_absolute_url())


@login_required
@vary_on_headers("HX-Request")
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
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
    project = _get_project_for_user(request, project_id)
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
    project = _get_project_for_user(request, project_id)
    name = project.name
    if project.runs.filter(status__in=["queued", "running"]).exists():
        messages.error(
            request, _("“%(name)s” has queued or running runs: cancel them first.") % {"name": name}
        )
        return _redirect(request, project.get_absolute_url())
    datasets.delete_project(project)
    messages.success(request, _("Project “%(name)s” deleted.") % {"name": name})
    return _redirect(request, reverse("projects:list"))


@login_required
@require_POST
def dataset_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
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
            _add_problems(form, "file", exc)
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
            return _redirect(request, dataset.get_absolute_url())
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
    project = _get_project_for_user(request, project_id)
    key = request.POST.get("sample", "json-answer")
    if key not in SAMPLES:
        raise Http404("no such sample")
    dataset = datasets.store_sample(project, key)
    services.request_stats(dataset)
    messages.success(
        request, _("Sample dataset added: %(rows)d rows.") % {"rows": dataset.row_count}
    )
    return _redirect(request, dataset.get_absolute_url())


@login_required
def dataset_detail(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    from projects.dataset_views import dataset_page_context

    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    return render(request, "projects/dataset_detail.html", dataset_page_context(dataset))


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def dataset_settings(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    """GET re-renders the form for the chosen shape; POST re-validates the file and saves."""
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    if request.method == "GET":
        form = DatasetSettingsForm(request.GET, dataset=dataset)
        form.is_valid()  # shows what does not fit yet, saves nothing
    else:
        form = DatasetSettingsForm(request.POST, dataset=dataset)
        if form.is_valid():
            try:
                target = versions.change_settings(dataset, form.spec())
            except DatasetError as exc:
                _add_problems(form, None, exc)
            else:
                announce_version(request, dataset, target, _("Dataset settings saved."))
                return _redirect(request, target.get_absolute_url())
    if request.htmx:
        context = {"dataset": dataset, "project": dataset.project, "form": form}
        return render(request, "projects/dataset_detail.html#settings_form", context)
    from projects.dataset_views import dataset_page_context

    return render(request, "projects/dataset_detail.html", dataset_page_context(dataset, form=form))


@login_required
def dataset_preview(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    """The first rows tokenized with the settings being edited: trained vs masked tokens."""
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    form = DatasetSettingsForm(request.GET or None, dataset=dataset)
    return render(request, "projects/dataset_detail.html#token_preview", _preview(dataset, form))


def announce_version(request: HttpRequest, old: Dataset, new: Dataset, done: str) -> None:
    """Say what was saved, and when it went into a new version because a run used the old."""
    if new.pk != old.pk:
        done += " " + _(
            "A run used version %(old)d, so this is version %(new)d; version %(old)d is unchanged."
        ) % {"old": old.version, "new": new.version}
    messages.success(request, done)


def _preview(dataset: Dataset, form: DatasetSettingsForm) -> dict:
    if form.is_bound and not form.is_valid():
        return {"preview_errors": [e for errors in form.errors.values() for e in errors]}
    spec = form.spec() if form.is_bound else dataset.spec()
    model = (form.cleaned_data.get("model") if form.is_bound else None) or BaseModel.objects.first()
    if model is None:
        return {"preview_errors": [_("No model in the store yet: the token preview needs one.")]}
    try:
        samples = datasets.token_preview(dataset, spec, model.path)
    except DatasetError as exc:
        return {"preview_errors": [str(p) for p in exc.problems]}
    except OSError:
        return {
            "preview_errors": [
                _("The tokenizer of %(model)s could not be loaded.") % {"model": model.name}
            ]
        }
    return {"samples": samples, "preview_model": model}


def _add_problems(form, field: str | None, exc: DatasetError) -> None:
    for problem in exc.problems:
        form.add_error(field, str(problem))
    if exc.total > len(exc.problems):
        form.add_error(
            field, _("… and %(n)d more problems.") % {"n": exc.total - len(exc.problems)}
        )


@login_required
@require_POST
def dataset_delete(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    if dataset.in_use:
        messages.error(
            request,
            _("“%(name)s” is used by a run, so it cannot be deleted: delete those runs first.")
            % {"name": dataset.name},
        )
        return _redirect(request, dataset.get_absolute_url())
    datasets.delete_dataset(dataset)
    messages.success(request, _("Dataset deleted."))
    return _redirect(request, dataset.project.get_absolute_url())


@login_required
def model_catalog(request: HttpRequest) -> HttpResponse:
    from projects.catalog import BATCH, SEQ_LEN, catalog_rows
    from training.capacity import target_device

    device, device_name, memory_mb = target_device()
    downloads = {}
    if request.user.is_staff:
        for item in ModelDownload.objects.order_by("created"):
            downloads[item.repo_id] = item  # the latest per repository
    return render(
        request,
        "projects/catalog.html",
        {
            "rows": [(row, downloads.get(row.repo_id)) for row in catalog_rows(device)],
            "device_name": device_name,
            "memory_mb": memory_mb,
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
    from projects.downloads import request_download
    from training.engine.catalog import get_model

    _staff_only(request)
    try:
        entry = get_model(request.POST.get("key", ""))
    except KeyError as exc:
        raise Http404("Not a catalog model.") from exc
    download = request_download(request.user, entry)
    if request.htmx:
        return render(request, "projects/_download.html", {"download": download, "key": entry.key})
    return redirect("catalog")


@login_required
def model_download_status(request: HttpRequest, download_id: int) -> HttpResponse:
    _staff_only(request)
    download = get_object_or_404(ModelDownload, pk=download_id)
    return render(request, "projects/_download.html", {"download": download})
