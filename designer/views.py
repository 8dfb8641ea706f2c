"""The Designs pages: list and create from a preset, the editor, YAML export and import."""

from __future__ import annotations

import yaml
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from designer import editor, services
from designer.forms import PretrainForm
from designer.models import Design, TrainedTokenizer
from projects.access import get_project_for_user
from projects.models import BaseModel
from training.capacity import largest_worker_bytes
from training.engine.design import spec
from training.engine.design import tokenizer as design_tokenizer

PRESET_NAMES = {"llama-tiny": "Llama-style tiny", "gpt2-tiny": "GPT-2-style tiny"}


def _get_design_for_user(request: HttpRequest, project_id: int, design_id: int) -> Design:
    return get_object_or_404(
        Design.objects.select_related("project"),
        pk=design_id,
        project_id=project_id,
        owner=request.user,
    )


@login_required
def design_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    if request.method == "POST":
        preset = request.POST.get("preset", "llama-tiny")
        try:
            name, start = _preset(preset)
        except (OSError, ValueError, BaseModel.DoesNotExist):
            return render(request, "designer/design_list.html", _list_context(project), status=400)
        design = Design.objects.create(
            owner=request.user,
            project=project,
            name=(request.POST.get("name") or name)[:100],
            spec=start.to_dict(),
        )
        return redirect("designer:edit", project.pk, design.pk)
    return render(request, "designer/design_list.html", _list_context(project))


def _preset(key: str) -> tuple[str, spec.Design]:
    """A preset by key: a tiny one, or ``store-<id>``, the architecture of a store model
    read from its config.json (a small file; its weights are never read)."""
    if key.startswith("store-") and key[6:].isdigit():
        model = BaseModel.objects.get(pk=int(key[6:]))
        return _("Architecture of %(model)s") % {"model": model.name}, spec.from_model_dir(
            model.path
        )
    return PRESET_NAMES.get(key, key), spec.PRESETS.get(key, spec.llama_tiny)()


def _list_context(project, **extra) -> dict:
    return {
        "project": project,
        "designs": project.designs.all(),
        "presets": PRESET_NAMES,
        "store_models": BaseModel.objects.all(),
        **extra,
    }


def _context(design: Design, edited: editor.Edited) -> dict:
    tokenizers = design.project.tokenizers.filter(status=TrainedTokenizer.Status.DONE)
    tokenizer = tokenizers.filter(pk=edited.tokenizer_id).first() if edited.tokenizer_id else None
    shown = editor.summary(
        edited,
        tokenizer_vocab=tokenizer.trained_vocab_size if tokenizer else None,
        memory_limit_bytes=largest_worker_bytes(),
    )
    return {
        "design": design,
        "project": design.project,
        "tokenizers": tokenizers,
        "tokenizer": tokenizer,
        "spec": edited.design,
        "batch_size": edited.batch_size,
        "sequence_length": edited.sequence_length,
        "rows": editor.layer_rows(edited.design, shown["errors"]),
        "oob_errors": editor.error_slots(edited.design, shown["errors"]),
        **shown,
    }


@login_required
def design_edit(request: HttpRequest, project_id: int, design_id: int) -> HttpResponse:
    design = _get_design_for_user(request, project_id, design_id)
    if request.method == "POST":
        edited = editor.parse(request.POST)
        context = _context(design, edited)
        if not request.POST.get("action") and not context["errors"]:
            design.spec = edited.design.to_dict()
            design.batch_size, design.sequence_length = edited.batch_size, edited.sequence_length
            design.tokenizer = context["tokenizer"]
            design.save(
                update_fields=["spec", "batch_size", "sequence_length", "tokenizer", "updated_at"]
            )
            context["saved"] = True
        template = "designer/design_edit.html"
        if request.htmx:
            template += "#editor"
        return render(request, template, context)
    edited = editor.Edited(
        design.design, design.batch_size, design.sequence_length, design.tokenizer_id
    )
    context = _context(design, edited)
    context["pretrain_form"] = PretrainForm(design=design)
    context["runs"] = design.runs.all()[:10]
    return render(request, "designer/design_edit.html", context)


@login_required
@require_POST
def design_pretrain(request: HttpRequest, project_id: int, design_id: int) -> HttpResponse:
    """Queue the pretraining of the saved design; errors re-render the form in place."""
    design = _get_design_for_user(request, project_id, design_id)
    form = PretrainForm(request.POST, design=design)
    if form.is_valid():
        run = services.start_pretraining(form)
        if request.htmx:
            return HttpResponseClientRedirect(run.get_absolute_url())
        return redirect(run)
    context = {"design": design, "project": design.project, "pretrain_form": form}
    if request.htmx:
        return render(request, "designer/design_edit.html#pretrain", context)
    edited = editor.Edited(
        design.design, design.batch_size, design.sequence_length, design.tokenizer_id
    )
    context = {**_context(design, edited), **context, "runs": design.runs.all()[:10]}
    return render(request, "designer/design_edit.html", context, status=400)


@login_required
@require_POST
def design_preview(request: HttpRequest, project_id: int, design_id: int) -> HttpResponse:
    """The live counts, diagram and errors for what the form holds now (nothing saved)."""
    design = _get_design_for_user(request, project_id, design_id)
    context = _context(design, editor.parse(request.POST))
    return render(request, "designer/design_edit.html#live", context)


@login_required
def design_export(request: HttpRequest, project_id: int, design_id: int) -> HttpResponse:
    design = _get_design_for_user(request, project_id, design_id)
    document = {
        "name": design.name,
        "design": design.spec,
        "batch_size": design.batch_size,
        "sequence_length": design.sequence_length,
    }
    if design.tokenizer_id:
        document["tokenizer"] = {
            "id": design.tokenizer_id,
            "vocab_size": design.tokenizer.trained_vocab_size,
        }
    response = HttpResponse(yaml.safe_dump(document, sort_keys=False), content_type="text/yaml")
    response["Content-Disposition"] = f'attachment; filename="design-{design.pk}.yaml"'
    return response


@login_required
@require_POST
def design_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    upload = request.FILES.get("file")
    error = ""
    try:
        if upload is None or upload.size > 64 * 1024:
            raise ValueError(_("Choose a design YAML file (at most 64 KB)."))
        document = yaml.safe_load(upload.read().decode("utf-8"))
        if not isinstance(document, dict):
            raise ValueError(_("A design file is a mapping with a 'design' key."))
        parsed = spec.Design.from_dict(document.get("design"))
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        error = str(exc)
    if error:
        context = _list_context(project, import_error=error)
        return render(request, "designer/design_list.html", context, status=400)
    linked = document.get("tokenizer")
    tokenizer_id = linked.get("id") if isinstance(linked, dict) else None
    design = Design.objects.create(
        owner=request.user,
        project=project,
        # The tokenizer it was exported with, when it is one of this project's.
        tokenizer=project.tokenizers.filter(pk=tokenizer_id).first()
        if isinstance(tokenizer_id, int)
        else None,
        name=str(document.get("name") or _("Imported design"))[:100],
        spec=parsed.to_dict(),
        batch_size=int(document.get("batch_size") or 8),
        sequence_length=int(document.get("sequence_length") or 128),
    )
    return redirect("designer:edit", project.pk, design.pk)


def _get_tokenizer_for_user(request: HttpRequest, project_id: int, tokenizer_id: int):
    return get_object_or_404(
        TrainedTokenizer.objects.select_related("project", "dataset"),
        pk=tokenizer_id,
        project_id=project_id,
        owner=request.user,
    )


@login_required
def tokenizer_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    error = ""
    if request.method == "POST":
        dataset = project.datasets.filter(pk=request.POST.get("dataset") or 0).first()
        try:
            vocab = int(request.POST.get("vocab_size", ""))
        except ValueError:
            vocab = 0
        if dataset is None:
            error = _("Choose one of this project's datasets.")
        elif not 300 <= vocab <= 65536:
            error = _("The vocabulary size is from 300 to 65536 tokens.")
        else:
            job = services.start_tokenizer(dataset, vocab)
            return redirect("designer:tokenizer", project.pk, job.pk)
    context = {
        "project": project,
        "tokenizers": project.tokenizers.select_related("dataset"),
        "datasets": project.datasets.all(),
        "error": error,
    }
    return render(request, "designer/tokenizer_list.html", context, status=400 if error else 200)


@login_required
def tokenizer_detail(request: HttpRequest, project_id: int, tokenizer_id: int) -> HttpResponse:
    """Status while it trains; then its vocabulary, tokens per word and the pieces the
    user's own sentence becomes (a 4k-token tokenizer loads in milliseconds)."""
    job = _get_tokenizer_for_user(request, project_id, tokenizer_id)
    sentence = request.GET.get("sentence", "")[:500]
    pieces: list[str] = []
    if sentence and job.status == TrainedTokenizer.Status.DONE:
        pieces = design_tokenizer.sample_tokenization(design_tokenizer.load(job.folder), sentence)
    context = {"tokenizer": job, "project": job.project, "sentence": sentence, "pieces": pieces}
    template = "designer/tokenizer_detail.html"
    if request.htmx and "sentence" in request.GET:
        template += "#pieces"
    return render(request, template, context)
