import pytest
from django.urls import reverse

from projects.models import Project
from tests.factories import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Support bot", description="answers tickets")


def test_it_lists_only_my_projects(owner_client, project, other_user):
    make_project(owner=other_user, name="Secret plans")
    response = owner_client.get(reverse("projects:list"))
    assert response.status_code == 200
    assert b"Support bot" in response.content
    assert b"Secret plans" not in response.content


def test_it_creates_a_project_with_htmx_and_client_redirects(owner_client, user, htmx_headers):
    response = owner_client.post(
        reverse("projects:create"), {"name": "  Poetry  ", "description": ""}, **htmx_headers
    )
    project = Project.objects.get(owner=user)
    assert project.name == "Poetry"
    assert response.status_code == 200
    assert response["HX-Redirect"] == project.get_absolute_url()


def test_it_creates_a_project_without_htmx_and_redirects(owner_client, user):
    response = owner_client.post(reverse("projects:create"), {"name": "Plain"})
    project = Project.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == project.get_absolute_url()


def test_it_rerenders_the_form_with_errors_for_a_duplicate_name(
    owner_client, project, htmx_headers
):
    response = owner_client.post(
        reverse("projects:create"), {"name": "support BOT"}, **htmx_headers
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="create-project"' in body
    assert "You already have a project called" in body
    assert "<html" not in body  # just the form partial
    assert Project.objects.count() == 1


def test_it_rejects_a_blank_name(owner_client, htmx_headers):
    response = owner_client.post(reverse("projects:create"), {"name": "   "}, **htmx_headers)
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert Project.objects.count() == 0


def test_it_allows_the_same_name_for_different_users(owner_client, other_user, user):
    make_project(owner=other_user, name="Shared name")
    owner_client.post(reverse("projects:create"), {"name": "Shared name"})
    assert Project.objects.filter(name="Shared name").count() == 2


def test_it_shows_the_project_page(owner_client, project):
    response = owner_client.get(project.get_absolute_url())
    assert response.status_code == 200
    assert b"answers tickets" in response.content


def test_it_renames_with_htmx_and_returns_the_header(owner_client, project, htmx_headers):
    url = reverse("projects:rename", args=[project.pk])
    form = owner_client.get(url, **htmx_headers)
    assert form.status_code == 200
    assert 'name="name"' in form.content.decode()
    response = owner_client.post(url, {"name": "Helpdesk", "description": "x"}, **htmx_headers)
    assert response.status_code == 200
    assert 'data-testid="project-name">Helpdesk<' in response.content.decode()
    project.refresh_from_db()
    assert project.name == "Helpdesk"


def test_it_keeps_the_old_name_when_rename_is_invalid(owner_client, project, user, htmx_headers):
    make_project(owner=user, name="Taken")
    url = reverse("projects:rename", args=[project.pk])
    response = owner_client.post(url, {"name": "taken"}, **htmx_headers)
    assert response.status_code == 200
    assert "You already have a project called" in response.content.decode()
    project.refresh_from_db()
    assert project.name == "Support bot"


def test_it_deletes_a_project(owner_client, project, htmx_headers):
    response = owner_client.post(reverse("projects:delete", args=[project.pk]), **htmx_headers)
    assert response["HX-Redirect"] == reverse("projects:list")
    assert not Project.objects.filter(pk=project.pk).exists()


def test_it_deletes_datasets_and_run_files_with_the_project(
    owner_client, project, django_capture_on_commit_callbacks
):
    from pathlib import Path

    from tests.factories import make_run

    run = make_run(project=project, status="completed")
    run.adapter_dir.mkdir(parents=True)
    dataset_file = Path(run.dataset.file.path)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("projects:delete", args=[project.pk]))
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not dataset_file.exists()
    assert not run.output_dir.exists()


def test_it_refuses_to_delete_a_project_with_a_running_run(owner_client, project):
    from tests.factories import make_run

    make_run(project=project, status="running")
    response = owner_client.post(reverse("projects:delete", args=[project.pk]), follow=True)
    assert "cancel them first" in response.content.decode()
    assert Project.objects.filter(pk=project.pk).exists()


@pytest.mark.parametrize("status", ["queued", "interrupted"])
def test_it_refuses_to_delete_a_project_whose_run_waits_to_resume(owner_client, project, status):
    from tests.factories import make_run

    make_run(project=project, status=status)  # an interrupted run resumes by itself
    response = owner_client.post(reverse("projects:delete", args=[project.pk]), follow=True)
    assert "cancel them first" in response.content.decode()
    assert Project.objects.filter(pk=project.pk).exists()


def test_it_refuses_get_on_delete(owner_client, project):
    response = owner_client.get(reverse("projects:delete", args=[project.pk]))
    assert response.status_code == 405
    assert Project.objects.filter(pk=project.pk).exists()


# --- Ownership: every project URL, other user and anonymous ---

PROJECT_URLS = [
    ("get", "projects:detail"),
    ("get", "projects:rename"),
    ("post", "projects:rename"),
    ("post", "projects:delete"),
]


@pytest.mark.parametrize(("method", "name"), PROJECT_URLS)
def test_it_404s_for_another_user_and_changes_nothing(other_client, project, method, name):
    url = reverse(name, args=[project.pk])
    response = getattr(other_client, method)(url, {"name": "hijacked"})
    assert response.status_code == 404
    project.refresh_from_db()
    assert project.name == "Support bot"


@pytest.mark.parametrize(("method", "name"), [*PROJECT_URLS, ("post", "projects:create")])
def test_it_sends_anonymous_users_to_login(client, project, method, name):
    args = [] if name == "projects:create" else [project.pk]
    response = getattr(client, method)(reverse(name, args=args), {"name": "anon"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert Project.objects.count() == 1
    project.refresh_from_db()
    assert project.name == "Support bot"


def test_it_sends_anonymous_users_to_login_from_the_list(client):
    response = client.get(reverse("projects:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
