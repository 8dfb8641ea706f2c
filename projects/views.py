from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from projects.forms import ProjectForm
from projects.models import Project


def _get_project_for_user(request: HttpRequest, project_id: int) -> Project:
    return get_object_or_404(Project, pk=project_id, owner=request.user)


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.filter(owner=request.user)
    return render(
        request,
        "projects/project_list.html",
        {"projects": projects, "form": ProjectForm(owner=request.user)},
    )


@login_required
@require_POST
def project_create(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST, owner=request.user)
    if not form.is_valid():
        if request.htmx:
            return render(request, "projects/project_list.html#create_form", {"form": form})
        projects = Project.objects.filter(owner=request.user)
        return render(request, "projects/project_list.html", {"projects": projects, "form": form})
    project = form.save()
    messages.success(request, _("Project “%(name)s” created.") % {"name": project.name})
    return _redirect(request, project.get_absolute_url())


@login_required
@vary_on_headers("HX-Request")
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
    return render(request, "projects/project_detail.html", {"project": project})


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def project_rename(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
    form = ProjectForm(request.POST or None, instance=project, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        if request.htmx:
            return render(request, "projects/project_detail.html#header", {"project": project})
        messages.success(request, _("Project renamed."))
        return redirect(project)
    template = "projects/project_detail.html"
    if request.htmx:
        template += "#rename_form"
    project.refresh_from_db()
    return render(request, template, {"project": project, "form": form, "editing": True})


@login_required
@require_POST
def project_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
    name = project.name
    project.delete()
    messages.success(request, _("Project “%(name)s” deleted.") % {"name": name})
    return _redirect(request, reverse("projects:list"))
