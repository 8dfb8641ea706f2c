from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from playground.access import login_or_api_key
from projects.access import get_project_for_user
from slmlab.streams import stream_folder_zip
from training import services
from training.documents import run_document
from training.engine.config import ConfigError, RunConfig
from training.engine.train import checkpoint
from training.events import run_context
from training.forms import ChatForm, GenerateForm, RunForm
from training.models import Run
from training.run_yaml import apply_yaml, recommend_settings, run_yaml


def _get_run_for_user(request: HttpRequest, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("project", "dataset", "base_model", "base_run"),
        pk=run_id,
        owner=request.user,
    )


@login_required
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    form = RunForm(request.POST or None, project=project)
    if request.method == "GET" and "dataset" in request.GET:
        form.fields["dataset"].initial = request.GET["dataset"]
    if request.method == "POST" and form.is_valid():
        run = services.start_run(
            owner=request.user,
            project=project,
            dataset=form.cleaned_data["dataset"],
            **form.base_choice(),
            name=form.cleaned_data["name"],
            config=form.config(),
        )
        messages.success(request, _("Run queued."))
        if request.htmx:
            return HttpResponseClientRedirect(run.get_absolute_url())
        return redirect(run)
    template = "training/run_new.html"
    if request.htmx and request.method == "POST":
        template += "#run_form"
    capacity = form.capacity if form.is_bound else form.initial_capacity()
    return render(request, template, {"project": project, "form": form, "capacity": capacity})


@login_required
@require_POST
def run_estimate(request: HttpRequest, project_id: int) -> HttpResponse:
    """The memory estimate for the form's current settings (HTMX, as the user edits)."""
    project = get_project_for_user(request, project_id)
    form = RunForm(request.POST, project=project)
    form.is_valid()
    return render(
        request,
        "training/run_new.html#estimate",
        {"project": project, "form": form, "capacity": form.capacity},
    )


@login_required
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    context = run_context(run)
    template = "training/run_detail.html#live" if request.htmx else "training/run_detail.html"
    return render(request, template, context)


@login_or_api_key
def run_json(request: HttpRequest, run_id: int) -> JsonResponse:
    run = _get_run_for_user(request, run_id)
    return JsonResponse(run_document(run))


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    if not services.cancel_run(run):
        messages.info(request, _("This run has already ended."))
    if request.htmx:
        return render(request, "training/run_detail.html#live", run_context(run))
    return redirect(run)


@login_required
@require_POST
def checkpoint_delete(request: HttpRequest, run_id: int, step: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    if run.status == Run.Status.RUNNING:
        messages.error(request, _("A checkpoint cannot be deleted while the run trains."))
    elif not checkpoint.delete(run.output_dir, step):
        raise Http404("No such checkpoint.")
    else:
        run.measure_disk()
    if request.htmx:
        return render(request, "training/run_detail.html#live", run_context(run))
    return redirect(run)


@login_required
@require_POST
def run_chat(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    form = ChatForm(request.POST)
    if not run.can_chat:
        form.add_error(None, _("Chat opens when the run has completed."))
    if form.is_valid():
        services.ask_chat(run, **form.cleaned_data)
        form = ChatForm(
            initial={
                k: form.cleaned_data[k]
                for k in ("system_prompt", "max_new_tokens", "temperature", "top_p")
            }
        )
    context = {"run": run, "chat_form": form}
    if request.htmx:
        return render(request, "training/run_detail.html#chat_panel", context)
    return redirect(run)


@login_required
@require_POST
def run_generate(request: HttpRequest, run_id: int) -> HttpResponse:
    """Text from a pretraining run's model, generated on a worker (pushed when done)."""
    run = _get_run_for_user(request, run_id)
    form = GenerateForm(request.POST)
    if not run.has_model:
        form.add_error(None, _("Text can be generated when the pretraining has completed."))
    if form.is_valid():
        services.ask_generation(run, **form.cleaned_data)
        form = GenerateForm(
            initial={k: form.cleaned_data[k] for k in ("prompt", "temperature", "max_new_tokens")}
        )
    context = {"run": run, "generate_form": form, "generations": run.text_generations.all()[:10]}
    if request.htmx:
        return render(request, "training/_generate.html#generate_panel", context)
    return redirect(run)


@login_required
def run_model(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    """A pretraining run's model folder (transformers config, weights, tokenizer)."""
    run = _get_run_for_user(request, run_id)
    if not run.has_model:
        raise Http404("This run has no model yet.")
    return stream_folder_zip(run.model_dir, f"slmlab-run-{run.pk}-model.zip")


@login_required
def run_tensorboard(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    run = _get_run_for_user(request, run_id)
    events_dir = run.output_dir / "tensorboard"
    if not events_dir.is_dir():
        raise Http404("This run has no TensorBoard events yet.")
    # Events grow while the run trains: each download streams the files as they are.
    return stream_folder_zip(
        events_dir, f"slmlab-run-{run.pk}-tensorboard.zip", growing=run.is_active
    )


@login_required
@require_POST
def run_recommend(request: HttpRequest, project_id: int) -> HttpResponse:
    """Fill the form with recommended settings for its model, dataset and the lab's workers."""
    project = get_project_for_user(request, project_id)
    preset = request.POST.get("preset", "balanced")
    bound = RunForm(request.POST, project=project)
    bound.is_valid()
    model = bound.cleaned_data.get("base_model")
    dataset = bound.cleaned_data.get("dataset")
    data = request.POST.copy()
    reasons: list[tuple[str, str]] = []
    if model is not None and dataset is not None:
        values, reasons = recommend_settings(
            model, dataset, preset, bound.cleaned_data.get("device", "")
        )
        for name, value in values.items():
            if name == "train_on_prompt":  # a choice of "True"/"False", not a checkbox
                data[name] = str(value)
            else:
                data[name] = "on" if value is True else ("" if value is False else value)
        data["max_steps"] = 0  # the recommendation counts in epochs
    form = RunForm(data, project=project)
    form.is_valid()
    context = {
        "project": project,
        "form": form,
        "capacity": form.capacity,
        "reasons": reasons,
        "preset": preset,
    }
    return render(request, "training/run_new.html#run_form", context)


@login_required
@require_POST
def run_config_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """The form's settings as the run.yaml that `manage.py train --config` reads."""
    project = get_project_for_user(request, project_id)
    form = RunForm({**request.POST.dict(), "start_anyway": "on"}, project=project)
    if not form.is_valid():
        return render(
            request,
            "training/run_new.html",
            {"project": project, "form": form, "capacity": form.capacity},
        )
    text = run_yaml(form)
    response = HttpResponse(text, content_type="application/yaml")
    response["Content-Disposition"] = (
        f'attachment; filename="{slugify(form.cleaned_data["name"])}.yaml"'
    )
    return response


@login_required
@require_POST
def run_config_import(request: HttpRequest, project_id: int) -> HttpResponse:
    """Fill the run form from an uploaded run.yaml (the same schema as the export)."""
    project = get_project_for_user(request, project_id)
    upload = request.FILES.get("config")
    form = RunForm(project=project)
    try:
        if upload is None:
            raise ConfigError({"file": "choose a run.yaml file"})
        if upload.size > 64 * 1024:
            raise ConfigError({"file": "a run.yaml is a few hundred bytes; this file is too big"})
        config = RunConfig.from_yaml(upload.read().decode("utf-8", errors="replace"))
        config.validate()
    except ConfigError as exc:
        for field, message in exc.errors.items():
            messages.error(
                request,
                _("run.yaml: %(field)s: %(message)s") % {"field": field, "message": message},
            )
    else:
        apply_yaml(form, config, project)
        messages.success(request, _("Settings loaded from %(name)s.") % {"name": upload.name})
    return render(
        request,
        "training/run_new.html",
        {"project": project, "form": form, "capacity": form.initial_capacity()},
    )
