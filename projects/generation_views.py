"""Synthetic datasets written by a model: the recipe form, the generations and their progress."""

from __future__ import annotations

import dataclasses

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from playground.services import RUN_PREFIX, base_label, resolve_model, tuned_runs
from projects import events, services
from projects.access import get_project_for_user
from projects.models import BaseModel, SyntheticGeneration
from slmlab.htmx import redirect as htmx_redirect
from slmlab.jobs import JobStatus
from training.engine.data import model_recipe
from training.engine.data.synthetic import RecipeError

MAX_ACTIVE_GENERATIONS = 2
PREVIEW_ROWS = 5
EXAMPLE = {
    "name": "Uses of things",
    "instruction": "In one sentence, what is {thing} used for?",
    "lists": "thing: a hammer | a kettle | an umbrella | a ladder | a compass | a broom",
    "examples": (
        '{"instruction": "In one sentence, what is a spoon used for?", '
        '"output": "A spoon is used to eat, stir and serve food."}'
    ),
    "rows": 6,
    "seed": 0,
    "temperature": 0.7,
    "max_new_tokens": 64,
    "check": "length",
    "min_chars": 10,
    "max_chars": 300,
    "dedupe": True,
}
CHECK_CHOICES = [
    ("none", gettext_lazy("none: keep every reply that is not empty")),
    ("valid_json", gettext_lazy("valid JSON")),
    ("regex", gettext_lazy("matches a regex")),
    ("length", gettext_lazy("length in characters")),
]


def model_choices(user) -> list[tuple[str, str]]:
    """Store models by name, and the user's runs with a model (fine-tunes with an adapter,
    models pretrained in the lab) as run-<id>, as the Playground and /v1 name and label
    them."""
    choices = [(m.name, m.name) for m in BaseModel.objects.all()]
    for run in tuned_runs(user):
        choices.append((f"{RUN_PREFIX}{run.pk}", base_label(run)))
    return choices


class ModelRecipeForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Dataset name"), max_length=200)
    model = forms.ChoiceField(label=gettext_lazy("Model"), choices=())
    instruction = forms.CharField(
        label=gettext_lazy("Instruction template"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("What the model is asked; slots in braces: {thing}"),
    )
    input = forms.CharField(
        label=gettext_lazy("Input template (optional)"),
        max_length=4000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
    )
    table = forms.CharField(
        label=gettext_lazy("Table of values (CSV, first line the slot names)"),
        required=False,
        max_length=2_000_000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    lists = forms.CharField(
        label=gettext_lazy("Lists of values"),
        required=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("One slot a line, “slot: value | value”; each is picked freely"),
    )
    examples = forms.CharField(
        label=gettext_lazy("Seed examples (JSON Lines)"),
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy(
            'One a line: {"instruction": "…", "output": "…"}; the model sees them as '
            "earlier questions and answers"
        ),
    )
    rows = forms.IntegerField(
        label=gettext_lazy("Rows to generate"),
        min_value=1,
        max_value=model_recipe.MAX_ROWS,
        initial=20,
    )
    temperature = forms.FloatField(
        label=gettext_lazy("Temperature"),
        min_value=0.0,
        max_value=2.0,
        initial=0.7,
        help_text=gettext_lazy("0 = greedy: one reply per prompt"),
    )
    seed = forms.IntegerField(label=gettext_lazy("Seed"), min_value=0, max_value=2**31, initial=0)
    max_new_tokens = forms.IntegerField(
        label=gettext_lazy("Max new tokens"),
        min_value=1,
        max_value=model_recipe.MAX_NEW_TOKENS,
        initial=128,
    )
    check = forms.ChoiceField(
        label=gettext_lazy("Keep replies that pass"), choices=CHECK_CHOICES, initial="none"
    )
    regex = forms.CharField(label=gettext_lazy("Regex"), max_length=500, required=False)
    min_chars = forms.IntegerField(
        label=gettext_lazy("Minimum characters"), min_value=0, required=False
    )
    max_chars = forms.IntegerField(
        label=gettext_lazy("Maximum characters"), min_value=1, required=False
    )
    dedupe = forms.BooleanField(
        label=gettext_lazy("Drop duplicates (the same prompt and reply)"),
        required=False,
        initial=True,
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["model"].choices = model_choices(user)

    def plan(self) -> model_recipe.Plan | None:
        """The checked recipe, or None with the problem on its field."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        try:
            return model_recipe.check(
                model_recipe.ModelRecipe(
                    instruction=data["instruction"],
                    input=data["input"],
                    table=data["table"],
                    lists=data["lists"],
                    examples=data["examples"],
                    rows=data["rows"],
                    seed=data["seed"],
                    temperature=data["temperature"],
                    max_new_tokens=data["max_new_tokens"],
                    check=model_recipe.OutputCheck(
                        data["check"], data["regex"], data["min_chars"], data["max_chars"]
                    ),
                    dedupe=data["dedupe"],
                )
            )
        except RecipeError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
            return None


def _page(request, project, form, preview=None, status=200) -> HttpResponse:
    return render(
        request,
        "projects/synthetic_model.html",
        {
            "project": project,
            "form": form,
            "preview": preview,
            "generations": project.generations.select_related("result")[:10],
        },
        status=status,
    )


def _refused(request, project, form) -> HttpResponse:
    # htmx swaps only 2xx answers: the form with its errors replaces itself.
    if request.htmx:
        return render(
            request,
            "projects/synthetic_model.html#model_recipe",
            {"project": project, "form": form},
        )
    return _page(request, project, form, status=400)


@login_required
def model_dataset(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return _page(request, project, ModelRecipeForm(initial=EXAMPLE, user=request.user))
    form = ModelRecipeForm(request.POST, user=request.user)
    plan = form.plan()
    if "preview" in request.POST:
        preview = model_recipe.prompts(plan)[:PREVIEW_ROWS] if plan else None
        context = {"project": project, "form": form, "preview": preview}
        return render(request, "projects/synthetic_model.html#model_recipe", context)
    if plan is None:
        return _refused(request, project, form)
    target = resolve_model(request.user, form.cleaned_data["model"])
    under_way = [JobStatus.QUEUED, JobStatus.RUNNING]
    active = request.user.synthetic_generations.filter(status__in=under_way).count()
    if target is None or active >= MAX_ACTIVE_GENERATIONS:
        message = (
            _("That model is no longer available; choose another.")
            if target is None
            else _("You have %(n)d generations under way; wait for one to end.") % {"n": active}
        )
        form.add_error(None, message)
        return _refused(request, project, form)
    services.request_generation(
        project,
        form.cleaned_data["name"],
        target,
        dict(form.fields["model"].choices)[target.model_id],
        dataclasses.asdict(plan.recipe),
        plan.recipe.rows,
    )
    return htmx_redirect(request, request.path)


def _generation_for_user(
    request: HttpRequest, project_id: int, generation_id: int
) -> SyntheticGeneration:
    return get_object_or_404(
        SyntheticGeneration.objects.select_related("result", "project"),
        pk=generation_id,
        project_id=project_id,
        owner=request.user,
    )


@login_required
def generation_status(request: HttpRequest, project_id: int, generation_id: int) -> HttpResponse:
    item = _generation_for_user(request, project_id, generation_id)
    return HttpResponse(events.render_generation(item))


@login_required
@require_POST
def generation_cancel(request: HttpRequest, project_id: int, generation_id: int) -> HttpResponse:
    item = _generation_for_user(request, project_id, generation_id)
    item.cancel()
    item.refresh_from_db()
    return HttpResponse(events.render_generation(item))
