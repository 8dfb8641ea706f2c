"""Dataset statistics, validation split, versions and details."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from projects import services, versions
from projects.dataset_forms import DatasetDetailsForm, ReplaceFileForm, SplitForm, StatsForm
from projects.forms import DatasetSettingsForm
from projects.models import BaseModel, Dataset, DatasetStats
from projects.stats import default_max_len, histogram_chart
from projects.views import _get_dataset_for_user, _preview, _redirect, announce_version
from training.engine.data import DatasetError


def dataset_page_context(dataset: Dataset, **forms) -> dict:
    """Context of the dataset page; pass bound forms to show their errors."""
    settings_form = forms.get("form") or DatasetSettingsForm(dataset=dataset)
    train_rows, val_rows = dataset.split_sizes()
    split = {"val_percent": dataset.val_percent, "split_seed": dataset.split_seed}
    return {
        "dataset": dataset,
        "project": dataset.project,
        "versions": dataset.versions(),
        "train_rows": train_rows,
        "val_rows": val_rows,
        "details_form": forms.get("details_form") or DatasetDetailsForm(instance=dataset),
        "split_form": forms.get("split_form") or SplitForm(initial=split),
        "replace_form": forms.get("replace_form") or ReplaceFileForm(),
        "latest_stats": dataset.stats.select_related("base_model").first(),
        "form": settings_form,
        **_preview(dataset, settings_form),
    }


def _render_page(request: HttpRequest, dataset: Dataset, **forms) -> HttpResponse:
    return render(request, "projects/dataset_detail.html", dataset_page_context(dataset, **forms))


def _stats_url(dataset: Dataset, stats: DatasetStats) -> str:
    url = reverse("projects:dataset_stats", args=[dataset.project_id, dataset.pk])
    return f"{url}?{urlencode({'base_model': stats.base_model_id, 'max_len': stats.max_len})}"


@login_required
@vary_on_headers("HX-Request")
def dataset_stats(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    """The statistics for the asked model and max length (default: the latest computed)."""
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
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
        form = StatsForm(
            initial={"base_model": model, "max_len": stats.max_len if stats else default_max_len()}
        )
    context = {
        "dataset": dataset,
        "project": dataset.project,
        "stats": stats,
        "form": form,
        "chart": histogram_chart(stats.result) if stats and stats.result else None,
        "poll_url": _stats_url(dataset, stats) if stats else "",
        "truncated_percent": 100 * stats.result["truncated_share"] if stats and stats.result else 0,
    }
    template = "projects/dataset_stats.html"
    if request.htmx:
        template += "#panel"
    return render(request, template, context)


@login_required
@require_POST
def dataset_stats_compute(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    form = StatsForm(request.POST)
    if not form.is_valid():
        context = {"dataset": dataset, "project": dataset.project, "form": form, "stats": None}
        return render(request, "projects/dataset_stats.html", context)
    stats = services.request_stats(
        dataset, form.cleaned_data["base_model"], form.cleaned_data["max_len"]
    )
    return _redirect(request, _stats_url(dataset, stats))


@login_required
@require_POST
def dataset_split(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    form = SplitForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["validation_file"]
        try:
            if upload:
                target = versions.set_validation_file(dataset, upload)
            else:
                target = versions.set_split(
                    dataset, form.cleaned_data["val_percent"], form.cleaned_data["split_seed"]
                )
        except DatasetError as exc:
            for problem in exc.problems:
                form.add_error("validation_file", str(problem))
        else:
            announce_version(request, dataset, target, _("Validation split saved."))
            return _redirect(request, target.get_absolute_url())
    return _render_page(request, dataset, split_form=form)


@login_required
@require_POST
def dataset_replace(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    form = ReplaceFileForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            target = versions.replace_file(dataset, form.cleaned_data["file"])
        except DatasetError as exc:
            for problem in exc.problems:
                form.add_error("file", str(problem))
        else:
            announce_version(
                request,
                dataset,
                target,
                _("File replaced: %(rows)d rows.") % {"rows": target.row_count},
            )
            return _redirect(request, target.get_absolute_url())
    return _render_page(request, dataset, replace_form=form)


@login_required
@require_POST
def dataset_details(request: HttpRequest, project_id: int, dataset_id: int) -> HttpResponse:
    dataset = _get_dataset_for_user(request, project_id, dataset_id)
    form = DatasetDetailsForm(request.POST, instance=dataset)
    if not form.is_valid():
        dataset.refresh_from_db()
        return _render_page(request, dataset, details_form=form)
    dataset.save(update_fields=["name", "description"])
    messages.success(request, _("Dataset details saved."))
    return _redirect(request, dataset.get_absolute_url())
