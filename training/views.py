import shutil
import tempfile
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from projects.models import Project
from training import services
from training.events import run_context
from training.forms import ChatForm, RunForm
from training.models import Run
from training.runner import run_summary


def _get_project_for_user(request: HttpRequest, project_id: int) -> Project:
    return get_object_or_404(Project, pk=project_id, owner=request.user)


def _get_run_for_user(request: HttpRequest, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("project", "dataset", "base_model"),
        pk=run_id,
        owner=request.user,
    )


@login_required
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
    form = RunForm(request.POST or None, project=project)
    if request.method == "GET" and "dataset" in request.GET:
        form.fields["dataset"].initial = request.GET["dataset"]
    if request.method == "POST" and form.is_valid():
        run = services.start_run(
            owner=request.user,
            project=project,
            dataset=form.cleaned_data["dataset"],
            base_model=form.cleaned_data["base_model"],
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
    project = _get_project_for_user(request, project_id)
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


@login_required
def run_json(request: HttpRequest, run_id: int) -> JsonResponse:
    run = _get_run_for_user(request, run_id)
    return JsonResponse(run_summary(run))


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
def run_chat(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    form = ChatForm(request.POST)
    if run.status != Run.Status.COMPLETED:
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
def run_adapter(request: HttpRequest, run_id: int) -> FileResponse:
    run = _get_run_for_user(request, run_id)
    if not run.has_adapter:
        raise Http404("This run has no adapter yet.")
    archive = run.output_dir / "adapter.zip"
    if not archive.exists():
        # Build once, atomically: a second request never serves a half-written zip.
        with tempfile.TemporaryDirectory(dir=run.output_dir) as tmp:
            built = shutil.make_archive(str(Path(tmp) / "adapter"), "zip", run.adapter_dir)
            Path(built).replace(archive)
    filename = f"slmlab-run-{run.pk}-adapter.zip"
    return FileResponse(archive.open("rb"), as_attachment=True, filename=filename)
