"""The runs table, run comparison and run results as JSON/CSV documents."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from experiments import documents, table
from experiments.compare import SMOOTHING_CHOICES, CompareError, compare, parse_run_ids
from playground.access import login_or_api_key
from projects.access import get_project_for_user
from slmlab.csvsafe import csv_lines
from training.models import Run


@login_required
def runs_table(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    query = table.TableQuery.from_params(request.GET)
    context = {
        "project": project,
        "query": query,
        "page": table.table_page(project, query),
        "choices": table.filter_choices(project),
    }
    if request.htmx:
        return render(request, "experiments/runs_table.html#table", context)
    return render(request, "experiments/runs_table.html", context)


@login_required
def runs_compare(request: HttpRequest) -> HttpResponse:
    try:
        ids = parse_run_ids(request.GET.getlist("runs"))
    except CompareError as exc:
        return render(request, "experiments/compare.html", {"error": str(exc)}, status=400)
    runs = {
        run.pk: run
        for run in Run.objects.filter(owner=request.user, pk__in=ids).select_related(
            "base_model", "dataset", "project"
        )
    }
    if len(runs) != len(ids):
        raise Http404("No such runs.")  # someone else's run looks like a missing one
    try:
        smoothing = float(request.GET.get("smooth", 0))
    except ValueError:
        smoothing = 0.0
    if smoothing not in SMOOTHING_CHOICES:
        smoothing = 0.0
    context = {
        "comparison": compare([runs[pk] for pk in ids], smoothing),
        "ids": ",".join(map(str, ids)),
        "smoothing_choices": SMOOTHING_CHOICES,
    }
    if request.htmx:
        return render(request, "experiments/compare.html#curves", context)
    return render(request, "experiments/compare.html", context)


def _csv(runs, filename: str) -> StreamingHttpResponse:
    rows = (documents.csv_row(run) for run in runs.iterator(chunk_size=200))
    response = StreamingHttpResponse(
        csv_lines(documents.csv_header(), rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _user_runs(request: HttpRequest):
    return Run.objects.filter(owner=request.user).select_related(
        "base_model", "base_run", "dataset"
    )


@login_or_api_key
def project_runs_json(request: HttpRequest, project_id: int) -> JsonResponse:
    project = get_project_for_user(request, project_id)
    runs = documents.documented_runs(project.runs.all())
    scope = {"scope": "project", "project": {"id": project.pk, "name": project.name}}
    return JsonResponse(documents.runs_document(runs, scope))


@login_or_api_key
def project_runs_csv(request: HttpRequest, project_id: int) -> StreamingHttpResponse:
    project = get_project_for_user(request, project_id)
    runs = project.runs.select_related("base_model", "base_run", "dataset")
    return _csv(runs, f"slmlab-project-{project.pk}-runs.csv")


@login_or_api_key
def user_runs_json(request: HttpRequest) -> JsonResponse:
    runs = documents.documented_runs(Run.objects.filter(owner=request.user))
    return JsonResponse(documents.runs_document(runs, {"scope": "user"}))


@login_or_api_key
def user_runs_csv(request: HttpRequest) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d")
    return _csv(_user_runs(request), f"slmlab-runs-{stamp}.csv")


@login_or_api_key
def run_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    runs = _user_runs(request).filter(pk=run_id)
    if not runs.exists():
        raise Http404("No such run.")
    return _csv(runs, f"slmlab-run-{run_id}.csv")
