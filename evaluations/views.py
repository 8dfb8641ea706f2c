from dataclasses import asdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from evaluations import services
from evaluations.documents import evaluation_document
from evaluations.downloads import csv_chunks
from evaluations.eval_files import check_eval_file
from evaluations.forms import EvaluationForm, PretrainedEvaluationForm, StoreEvaluationForm
from evaluations.judging import judge_context
from evaluations.models import Evaluation
from evaluations.wording import rows_for_page
from projects.access import get_project_for_user
from slmlab.streams import stream_chunks
from training.engine.evaluate.judge import JUDGE_PROMPT
from training.models import Run

PAGE_SIZE = 25
FILTERS = {"worse": Q(worse=True), "changed": Q(changed=True)}


def _get_evaluation_for_user(request: HttpRequest, evaluation_id: int) -> Evaluation:
    return get_object_or_404(
        Evaluation.objects.select_related("run", "run__project", "project", "base_model"),
        pk=evaluation_id,
        owner=request.user,
    )


@login_required
@require_POST
def evaluation_new(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("dataset"), pk=run_id, owner=request.user)
    if run.is_pretraining:
        return _pretrained_evaluation_new(request, run)
    form = EvaluationForm(request.POST, request.FILES)
    upload = request.FILES.get("eval_file")
    spec = None
    if not run.has_adapter:
        form.add_error(None, _("An evaluation needs a run that saved an adapter."))
    elif upload is not None:
        try:
            spec = check_eval_file(upload, run.dataset.template, run.dataset.custom_template)
        except ValueError as exc:
            form.add_error("eval_file", str(exc))
    elif not run.dataset.split_sizes()[1]:
        form.add_error(
            None,
            _("This run's dataset has no validation rows: zero examples to evaluate on."),
        )
    if not form.is_valid():
        context = {"run": run, "eval_form": form}
        return render(request, "evaluations/_new.html", context, status=200)
    settings = {k: v for k, v in form.cleaned_data.items() if k != "eval_file"}
    if spec is not None:
        settings.update(eval_file=upload, eval_spec=asdict(spec))
    evaluation = services.start_evaluation(run, **settings)
    if request.htmx:
        return HttpResponseClientRedirect(evaluation.get_absolute_url())
    return redirect(evaluation)


def _pretrained_evaluation_new(request: HttpRequest, run: Run) -> HttpResponse:
    """The model a pretraining run saved, alone, on a dataset's validation rows or an
    uploaded eval file of its project."""
    form = PretrainedEvaluationForm(request.POST, request.FILES, project=run.project)
    upload = request.FILES.get("eval_file")
    spec = None
    if not run.has_model:
        form.add_error(None, _("An evaluation needs a pretraining run that saved its model."))
    elif form.is_valid() and upload is not None:
        dataset = form.cleaned_data["dataset"]
        template = dataset.template if dataset else "model"
        try:
            spec = check_eval_file(upload, template, dataset.custom_template if dataset else "")
        except ValueError as exc:
            form.add_error("eval_file", str(exc))
    if not form.is_valid():
        context = {"run": run, "eval_form": form}
        return render(request, "evaluations/_new.html", context, status=200)
    settings = {k: v for k, v in form.cleaned_data.items() if k != "eval_file"}
    if spec is not None:
        settings.update(eval_file=upload, eval_spec=asdict(spec))
    evaluation = services.start_evaluation(run, project=run.project, **settings)
    if request.htmx:
        return HttpResponseClientRedirect(evaluation.get_absolute_url())
    return redirect(evaluation)


@login_required
@require_http_methods(["GET", "POST"])
def store_evaluation_new(request: HttpRequest, project_id: int) -> HttpResponse:
    """A store model alone (no run) on a dataset's validation rows or an uploaded eval file."""
    project = get_project_for_user(request, project_id)
    if request.method == "GET":
        form = StoreEvaluationForm(project=project)
        context = {"project": project, "form": form, **judge_context()}
        return render(request, "evaluations/store_new.html", context)
    form = StoreEvaluationForm(request.POST, request.FILES, project=project)
    upload = request.FILES.get("eval_file")
    spec = None
    if form.is_valid() and upload is not None:
        dataset = form.cleaned_data["dataset"]
        template = dataset.template if dataset else "model"
        try:
            spec = check_eval_file(upload, template, dataset.custom_template if dataset else "")
        except ValueError as exc:
            form.add_error("eval_file", str(exc))
    if not form.is_valid():
        context = {"project": project, "form": form, **judge_context()}
        return render(request, "evaluations/store_new.html", context)
    settings = {k: v for k, v in form.cleaned_data.items() if k != "eval_file"}
    if spec is not None:
        settings.update(eval_file=upload, eval_spec=asdict(spec))
    evaluation = services.start_store_evaluation(project, **settings)
    return redirect(evaluation)


@login_required
@vary_on_headers("HX-Request")
def evaluation_detail(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = _get_evaluation_for_user(request, evaluation_id)
    shown = request.GET.get("show", "")
    query = request.GET.get("q", "").strip()
    rows = evaluation.rows.all()
    if shown in FILTERS:
        rows = rows.filter(FILTERS[shown])
    if query:
        rows = rows.filter(
            Q(prompt__icontains=query)
            | Q(expected__icontains=query)
            | Q(base_output__icontains=query)
            | Q(tuned_output__icontains=query)
        )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "evaluation": evaluation,
        "run": evaluation.run,
        "back": evaluation.back,
        "scores": rows_for_page(evaluation.summary),
        "page": page,
        "show": shown,
        "q": query,
        "metric_names": evaluation.metrics,
        "judge_prompt": JUDGE_PROMPT if "judge" in evaluation.metrics else "",
    }
    template = "evaluations/detail.html"
    if request.htmx and request.GET.get("fragment") == "table":
        template += "#table"
    return render(request, template, context)


@login_required
def evaluation_json(request: HttpRequest, evaluation_id: int) -> JsonResponse:
    evaluation = _get_evaluation_for_user(request, evaluation_id)
    return JsonResponse(evaluation_document(evaluation))


@login_required
def evaluation_csv(request: HttpRequest, evaluation_id: int) -> StreamingHttpResponse:
    evaluation = _get_evaluation_for_user(request, evaluation_id)
    return stream_chunks(
        csv_chunks(evaluation), f"slmlab-evaluation-{evaluation.pk}.csv", "text/csv"
    )


@login_required
@require_POST
def evaluation_cancel(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = _get_evaluation_for_user(request, evaluation_id)
    if not services.cancel_evaluation(evaluation):
        messages.info(request, _("This evaluation has already ended."))
    return redirect(evaluation)
