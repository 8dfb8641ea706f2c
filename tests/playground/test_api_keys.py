"""API keys: shown once, stored hashed, listed, revoked, and only their owner's."""

from __future__ import annotations

import re

import pytest
from django.test import RequestFactory
from django.urls import reverse

from playground import services
from playground.models import ApiKey, digest

pytestmark = pytest.mark.django_db

KEYS = reverse("playground:keys")


def _create(client, name: str = "my script") -> str:
    response = client.post(KEYS, {"name": name})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    match = re.search(r'data-testid="new-key-value">([^<]+)<', response.content.decode())
    assert match
    return match.group(1)


def test_a_key_is_shown_once_and_stored_only_as_a_hash(owner_client, user) -> None:
    raw = _create(owner_client)

    key = ApiKey.objects.get(owner=user)
    assert key.name == "my script"
    assert key.digest == digest(raw) and raw not in (key.digest, key.prefix)
    assert raw.startswith(key.prefix)
    page = owner_client.get(KEYS).content.decode()
    assert raw not in page
    assert "my script" in page and key.prefix in page


def test_a_key_authenticates_a_bearer_request_until_it_is_revoked(owner_client, user) -> None:
    raw = _create(owner_client)
    request = RequestFactory().get("/", headers={"Authorization": f"Bearer {raw}"})

    assert services.bearer_key(request).owner == user
    assert ApiKey.objects.get().last_used is not None

    key = ApiKey.objects.get()
    response = owner_client.post(reverse("playground:key_revoke", args=[key.pk]))
    assert response.status_code == 302
    assert services.bearer_key(request) is None
    assert 'data-testid="revoked"' in owner_client.get(KEYS).content.decode()


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer slm-wrong", "Basic abc"])
def test_a_missing_or_wrong_key_authenticates_nobody(owner_client, header) -> None:
    _create(owner_client)
    request = RequestFactory().get("/", headers={"Authorization": header})

    assert services.bearer_key(request) is None


def test_a_key_of_an_inactive_user_is_refused(owner_client, user) -> None:
    raw = _create(owner_client)
    user.is_active = False
    user.save()

    assert services.key_from_raw(raw) is None


def test_an_empty_name_is_refused(owner_client) -> None:
    response = owner_client.post(KEYS, {"name": ""})

    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_another_user_cannot_see_or_revoke_a_key(owner_client, other_client) -> None:
    _create(owner_client, name="secret name")
    key = ApiKey.objects.get()

    assert "secret name" not in other_client.get(KEYS).content.decode()
    response = other_client.post(reverse("playground:key_revoke", args=[key.pk]))
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.is_active


def test_anonymous_users_are_sent_to_log_in(client, owner_client) -> None:
    _create(owner_client)
    key = ApiKey.objects.get()

    for response in (
        client.get(KEYS),
        client.post(reverse("playground:key_revoke", args=[key.pk])),
    ):
        assert response.status_code == 302 and "login" in response["Location"]


def test_the_account_page_links_to_the_keys(owner_client) -> None:
    assert KEYS in owner_client.get(reverse("lab_account:account")).content.decode()
