"""Run results as JSON for scripts: ``Authorization: Bearer <key>`` instead of a session."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from playground import services
from tests.factories import make_project, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_key(user) -> str:
    return services.create_key(user, "script")[1]


def _get(url: str, key: str):
    return Client().get(url, headers={"Authorization": f"Bearer {key}"})


def test_the_run_json_accepts_the_owners_key(user, owner_key) -> None:
    run = make_run(make_project(owner=user))

    for url in (
        reverse("training:run_json", args=[run.pk]),
        reverse("experiments:user_json"),
        reverse("experiments:project_json", args=[run.project.pk]),
    ):
        response = _get(url, owner_key)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("application/json")


def test_a_wrong_or_revoked_key_gets_401_not_a_login_page(user, owner_key) -> None:
    run = make_run(make_project(owner=user))
    url = reverse("training:run_json", args=[run.pk])

    assert _get(url, "slm-not-a-key").status_code == 401
    user.api_keys.get().revoke()
    assert _get(url, owner_key).status_code == 401


def test_another_users_key_gets_404(user, other_user) -> None:
    run = make_run(make_project(owner=user))
    other_key = services.create_key(other_user, "theirs")[1]

    assert _get(reverse("training:run_json", args=[run.pk]), other_key).status_code == 404
    assert (
        _get(reverse("experiments:project_json", args=[run.project.pk]), other_key).status_code
        == 404
    )


def test_the_csv_documents_accept_the_owners_key_and_no_one_elses(user, other_user, owner_key):
    run = make_run(make_project(owner=user), name="scripted")
    urls = [
        reverse("experiments:run_csv", args=[run.pk]),
        reverse("experiments:project_csv", args=[run.project.pk]),
        reverse("experiments:user_csv"),
    ]
    for url in urls:
        response = _get(url, owner_key)
        assert response.status_code == 200, url
        assert b"scripted" in b"".join(response.streaming_content)
    theirs = services.create_key(other_user, "theirs")[1]
    assert _get(urls[0], theirs).status_code == 404
    assert _get(urls[1], theirs).status_code == 404
    assert b"scripted" not in b"".join(_get(urls[2], theirs).streaming_content)
    assert _get(urls[0], "slm-wrong").status_code == 401
