"""Ownership: a user's own projects and datasets, or a 404 (the same for "not yours")."""

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from projects.models import Dataset, Project


def get_project_for_user(request: HttpRequest, project_id: int) -> Project:
    return get_object_or_404(Project, pk=project_id, owner=request.user)


def get_dataset_for_user(request: HttpRequest, project_id: int, dataset_id: int) -> Dataset:
    return get_object_or_404(
        Dataset.objects.select_related("project"),
        pk=dataset_id,
        project_id=project_id,
        owner=request.user,
    )
