"""A dataset's page: settings with a live token preview, statistics, split, versions."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from projects import datasets, events, services, versions
from projects.access import get_dataset_for_user
from projects.dataset_forms import DatasetDetailsForm, ReplaceFileForm, SplitForm, StatsForm
from projects.forms import DatasetSettingsForm, add_dataset_problems
from projects.models import BaseModel, Dataset, DatasetCheck, DatasetStats
from slmlab.htmx import redirect as htmx_redirect
from training import retention
from training.engine.config import DEFAULT_MAX_SEQ_LEN
from training.engine.data.records import DatasetError
from training.models import Run


def dataset_page_context(dataset: Dataset, **forms) -> dict:
    """Context of the dataset page; pass bound forms to show their errors."""
    train_rows, val_rows = dataset.split_sizes()
    split = {"val_percent": dataset.val_percent, "split_seed": dataset.split_seed}
    # Whether a run used each version, in one query (the page asks for every version).
    used = Run.objects.filter(dataset=OuterRef("pk"))
    versions = list(dataset.versions().annotate(used=Exists(used)))
    return {
        "dataset": dataset,
        "project": dataset.project,
        "versions": versions,
        "in_use": any(v.used for v in versions if v.pk == dataset.pk),
        "train_rows": train_rows,
        "val_rows": val_rows,
        "details_form": forms.get("details_form") or DatasetDetailsForm(instance=dataset),
        "split_form": forms.get("split_form") or SplitForm(initial=split, dataset=dataset),
        "replace_form": forms.get("replace_form") or ReplaceFileForm(),
        "latest_stats": dataset.stats.first(),
        "form": forms.get("form") or DatasetSettingsForm(dataset=dataset),
        # A check still under way; a finished one has already opened what it saved.
        "check": next((c for c in dataset.checks.all()[:1] if c.is_active), None),
    }


def _render_page(request: HttpRequest, dataset: Dataset, **forms) -> HttpResponse:
    return render(request, "projects/dataset_detail.html", dataset_page_context(dataset, **forms))


def announce_version(request: HttpRequest, old: Dataset, new: Dataset, done: str) -> None:
    """Say what was saved, and when it went into a new version because a run used the old."""
    if new.pk != old.pk:
        done += " " + _(
            "A run used version %(old)d, so this is version %(new)d; version %(old)d is unchanged."
        ) % {"old": old.version, "new": new.version}
    messages.success(request, done)


@login_required
def dataset_detail(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    context = dataset_page_context(dataset)
    if request.GET.get("saved", "").isdigit():  # opened by the settings check that saved it
        context["saved"] = (
            DatasetCheck.objects.filter(pk=request.GET["saved"], result=dataset, status="done")
            .select_related("dataset")
            .first()
        )
    return render(request, "projects/dataset_detail.html", context)


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def dataset_settings(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    """GET re-renders the form for the chosen shape; POST has a worker check every row
    with the new settings and save them (the page follows the check live)."""
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    form = DatasetSettingsForm(request.POST if request.method == "POST" else request.GET,
                               dataset=dataset)  # fmt: skip
    check = None
    if form.is_valid() and request.method == "POST":
        if form.spec() == dataset.spec():
            messages.info(request, _("Nothing changed: the dataset keeps its settings."))
            return htmx_redirect(request, dataset.get_absolute_url())
        check = services.request_check(dataset, form.spec())
    if not request.htmx:
        return (
            _render_page(request, dataset, form=form)
            if check is None
            else htmx_redirect(request, dataset.get_absolute_url())
        )
    context = {"dataset": dataset, "project": dataset.project, "form": form, "check": check}
    context["in_use"] = dataset.in_use
    return render(request, "projects/dataset_detail.html#settings_form", context)


@login_required
def dataset_preview(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    """The first rows tokenized with the settings being edited, by a worker: this answers
    with a placeholder that the worker's push replaces (trained vs masked tokens)."""
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    form = DatasetSettingsForm(request.GET or None, dataset=dataset)
    context: dict = {"dataset": dataset}
    if dataset.file_deleted_at is not None:
        context["preview_errors"] = [datasets.FILE_DELETED]
    elif form.is_bound and not form.is_valid():
        context["preview_errors"] = [e for errors in form.errors.values() for e in errors]
    else:
        spec = form.spec() if form.is_bound else dataset.spec()
        model = (form.cleaned_data.get("model") if form.is_bound else None) or (
            BaseModel.objects.first()
        )
        if model is None:
            context["preview_errors"] = [
                _("No model in the store yet: the token preview needs one.")
            ]
        else:
            context["key"] = services.request_preview(dataset, spec, model)
            context["preview_model"] = model
    return render(request, "projects/dataset_detail.html#token_preview", context)


@login_required
@require_POST
def dataset_delete(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    if dataset.in_use:
        messages.error(
            request,
            _("“%(name)s” is used by a run, so it cannot be deleted: delete those runs first.")
            % {"name": dataset.name},
        )
        return htmx_redirect(request, dataset.get_absolute_url())
    datasets.delete_dataset(dataset)
    messages.success(request, _("Dataset deleted."))
    return htmx_redirect(request, dataset.project.get_absolute_url())


def _stats_url(dataset: Dataset, stats: DatasetStats) -> str:
    url = reverse("projects:dataset_stats", args=[dataset.project_id, dataset.pk])
    return f"{url}?{urlencode({'base_model': stats.base_model_id, 'max_len': stats.max_len})}"


@login_required
def dataset_stats(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    """The statistics for the asked model and max length (default: the latest computed);
    a worker's progress arrives over the dataset's websocket."""
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    stats = None
    if "max_len" in request.GET:
        form = StatsForm(request.GET)
        if form.is_valid():
            stats = dataset.stats.filter(
                base_model=form.cleaned_data["base_model"], max_len=form.cleaned_data["max_len"]
            ).first()
    else:
        stats = dataset.stats.select_related("base_model").first()
        model = stats.base_model if stats else BaseModel.objects.first()
        max_len = stats.max_len if stats else DEFAULT_MAX_SEQ_LEN
        form = StatsForm(initial={"base_model": model, "max_len": max_len})
    context = {"dataset": dataset, "project": dataset.project, "form": form}
    return render(
        request, "projects/dataset_stats.html", {**context, **events.stats_context(stats)}
    )


@login_required
@require_POST
def dataset_stats_compute(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    form = StatsForm(request.POST)
    if dataset.file_deleted_at is not None:
        form.is_valid()
        form.add_error(None, datasets.FILE_DELETED)
    if not form.is_valid():
        context = {"dataset": dataset, "project": dataset.project, "form": form, "stats": None}
        return render(request, "projects/dataset_stats.html", context)
    stats = services.request_stats(
        dataset, form.cleaned_data["base_model"], form.cleaned_data["max_len"]
    )
    return htmx_redirect(request, _stats_url(dataset, stats))


@login_required
@require_POST
def dataset_split(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    form = SplitForm(request.POST, request.FILES, dataset=dataset)
    if form.is_valid():
        upload = form.cleaned_data["validation_file"]
        try:
            if upload:
                source = datasets.receive_upload(upload, dataset.file_format)
                target = versions.set_validation_file(dataset, source)
            else:
                target = versions.set_split(
                    dataset, form.cleaned_data["val_percent"], form.cleaned_data["split_seed"]
                )
        except DatasetError as exc:
            add_dataset_problems(form, "validation_file", exc)
        else:
            announce_version(request, dataset, target, _("Validation split saved."))
            return htmx_redirect(request, target.get_absolute_url())
    return _render_page(request, dataset, split_form=form)


@login_required
@require_POST
def dataset_replace(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    form = ReplaceFileForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            datasets.require_file(dataset)  # its validation file is gone with it
            checked = datasets.receive_and_check(form.cleaned_data["file"])
            target = versions.replace_file(dataset, checked)
        except DatasetError as exc:
            add_dataset_problems(form, "file", exc)
        else:
            services.request_stats(target)
            done = _("File replaced: %(rows)d rows.") % {"rows": target.row_count}
            announce_version(request, dataset, target, done)
            return htmx_redirect(request, target.get_absolute_url())
    return _render_page(request, dataset, replace_form=form)


@login_required
@require_POST
def dataset_details(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request, project_id, dataset_id)
    form = DatasetDetailsForm(request.POST, instance=dataset)
    if not form.is_valid():
        dataset.refresh_from_db()
        return _render_page(request, dataset, details_form=form)
    dataset.save(update_fields=["name", "description", "delete_after_training"])
    if retention.release_dataset(dataset):
        messages.success(request, _("Dataset details saved; its file was deleted after training."))
        return htmx_redirect(request, dataset.get_absolute_url())
    messages.success(request, _("Dataset details saved."))
    return htmx_redirect(request, dataset.get_absolute_url())
