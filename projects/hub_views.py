"""Datasets imported from the Hugging Face Hub: the form, the imports and their progress."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from projects import events, services
from projects.access import get_project_for_user
from projects.models import DatasetImport
from slmlab.htmx import redirect as htmx_redirect
from slmlab.jobs import JobStatus

# Hub repository ids: an optional namespace and a name of letters, digits, "-", "_", ".".
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
REF = re.compile(r"^[\w.\-/]{1,100}$")
MAX_ACTIVE_IMPORTS = 3


class HubImportForm(forms.Form):
    repo_id = forms.CharField(
        label=gettext_lazy("Dataset repository"),
        max_length=200,
        help_text=gettext_lazy("As on huggingface.co/datasets/…, e.g. tatsu-lab/alpaca"),
    )
    config = forms.CharField(
        label=gettext_lazy("Config (optional)"), max_length=100, required=False
    )
    split = forms.CharField(
        label=gettext_lazy("Split"), max_length=100, required=False, initial="train"
    )
    revision = forms.CharField(
        label=gettext_lazy("Revision (optional)"),
        max_length=100,
        required=False,
        help_text=gettext_lazy("A branch, tag or commit; the newest commit of main if empty"),
    )
    name = forms.CharField(
        label=gettext_lazy("Dataset name (optional)"), max_length=200, required=False
    )

    def clean_repo_id(self) -> str:
        value = self.cleaned_data["repo_id"].strip().removeprefix("https://huggingface.co/")
        value = value.removeprefix("datasets/").strip("/")
        if not REPO_ID.match(value) or ".." in value:
            raise forms.ValidationError(
                _("Not a Hub repository id: write it as owner/name, e.g. tatsu-lab/alpaca.")
            )
        return value

    def _ref(self, field: str) -> str:
        value = self.cleaned_data[field].strip()
        if value and (not REF.match(value) or ".." in value):
            raise forms.ValidationError(_("Letters, digits and - _ . / only."))
        return value

    def clean_config(self) -> str:
        return self._ref("config")

    def clean_split(self) -> str:
        return self._ref("split") or "train"

    def clean_revision(self) -> str:
        return self._ref("revision")


def _page(request, project, form, status=200) -> HttpResponse:
    imports = project.imports.select_related("result")[:10]
    return render(
        request,
        "projects/hub_import.html",
        {
            "project": project,
            "form": form,
            "imports": imports,
            "has_hub_token": hasattr(request.user, "hub_token"),
        },
        status=status,
    )


@login_required
def hub_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return _page(request, project, HubImportForm())
    form = HubImportForm(request.POST)
    if not form.is_valid():
        return _page(request, project, form, status=400)
    under_way = [JobStatus.QUEUED, JobStatus.RUNNING]
    active = request.user.dataset_imports.filter(status__in=under_way).count()
    if active >= MAX_ACTIVE_IMPORTS:
        form.add_error(
            None,
            _("You have %(n)d imports under way; wait for one to end.") % {"n": active},
        )
        return _page(request, project, form, status=400)
    data = form.cleaned_data
    services.request_hub_import(
        project, data["repo_id"], data["config"], data["split"], data["revision"], data["name"]
    )
    return htmx_redirect(request, request.path)


def _import_for_user(request: HttpRequest, project_id: int, import_id: int) -> DatasetImport:
    return get_object_or_404(
        DatasetImport.objects.select_related("result", "project"),
        pk=import_id,
        project_id=project_id,
        owner=request.user,
    )


@login_required
def hub_import_status(request: HttpRequest, project_id: int, import_id: int) -> HttpResponse:
    item = _import_for_user(request, project_id, import_id)
    return HttpResponse(events.render_import(item))


@login_required
@require_POST
def hub_import_cancel(request: HttpRequest, project_id: int, import_id: int) -> HttpResponse:
    item = _import_for_user(request, project_id, import_id)
    item.cancel()
    item.refresh_from_db()
    return HttpResponse(events.render_import(item))
