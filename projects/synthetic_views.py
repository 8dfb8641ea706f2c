"""Synthetic datasets from templates: write the templates and values, preview, generate."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from projects import datasets, services
from projects.access import get_project_for_user
from projects.forms import add_dataset_problems
from slmlab.htmx import redirect as htmx_redirect
from training.engine.data import synthetic
from training.engine.data.records import DatasetError, DataSpec

PREVIEW_ROWS = 5
EXAMPLE = {
    "name": "Capitals",
    "instruction": "What is the capital of {country}? Answer in {style}.",
    "output": "The capital of {country} is {capital}.",
    "table": "country,capital\nFrance,Paris\nJapan,Tokyo\nKenya,Nairobi\nPeru,Lima",
    "lists": "style: one sentence | a full sentence",
    "rows": 8,
    "seed": 0,
}


class RecipeForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Dataset name"), max_length=200)
    instruction = forms.CharField(
        label=gettext_lazy("Instruction template"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("Slots in braces: {country}"),
    )
    input = forms.CharField(
        label=gettext_lazy("Input template (optional)"),
        max_length=4000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
    )
    output = forms.CharField(
        label=gettext_lazy("Output template"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("What the model should answer; it is trained"),
    )
    table = forms.CharField(
        label=gettext_lazy("Table of values (CSV, first line the slot names)"),
        required=False,
        max_length=2_000_000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=gettext_lazy("Values of one line belong together (a country and its capital)"),
    )
    lists = forms.CharField(
        label=gettext_lazy("Lists of values"),
        required=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("One slot a line, “slot: value | value”; each is picked freely"),
    )
    rows = forms.IntegerField(
        label=gettext_lazy("Rows"), min_value=1, max_value=synthetic.MAX_ROWS, initial=100
    )
    seed = forms.IntegerField(label=gettext_lazy("Seed"), min_value=0, initial=0)

    def recipe(self) -> synthetic.Recipe | None:
        """The checked recipe, or None with the problem on its field."""
        data = self.cleaned_data
        try:
            return synthetic.check(
                synthetic.Recipe(
                    instruction=data["instruction"],
                    input=data.get("input") or "",
                    output=data["output"],
                    table=data.get("table") or "",
                    lists=data.get("lists") or "",
                    rows=data["rows"],
                    seed=data["seed"],
                )
            )
        except synthetic.RecipeError as exc:
            self.add_error(exc.field, exc.message)
            return None


def _page(request, project, form, preview=None, status=200) -> HttpResponse:
    return render(
        request,
        "projects/synthetic.html",
        {"project": project, "form": form, "preview": preview},
        status=status,
    )


@login_required
def synthetic_dataset(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return _page(request, project, RecipeForm(initial=EXAMPLE))
    form = RecipeForm(request.POST)
    recipe = form.recipe() if form.is_valid() else None
    if "preview" in request.POST:
        preview = synthetic.generate(recipe, limit=PREVIEW_ROWS) if recipe else None
        context = {"project": project, "form": form, "preview": preview}
        return render(request, "projects/synthetic.html#recipe", context)
    if recipe is None:
        return _page(request, project, form, status=200)
    fd, tmp = tempfile.mkstemp(dir=datasets.tmp_dir(), suffix=".jsonl")
    os.close(fd)
    synthetic.write_jsonl(synthetic.generate(recipe), Path(tmp))
    try:
        dataset = datasets.store_dataset(
            project, Path(tmp), form.cleaned_data["name"], DataSpec(), check_quota=True
        )
    except DatasetError as exc:
        add_dataset_problems(form, None, exc)
        return _page(request, project, form)
    dataset.description = synthetic.describe(recipe)[:2000]
    dataset.save(update_fields=["description"])
    services.request_stats(dataset)
    messages.success(request, _("Dataset generated: %(rows)d rows.") % {"rows": dataset.row_count})
    return htmx_redirect(request, dataset.get_absolute_url())
