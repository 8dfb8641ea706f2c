"""Whether an email is registered is not revealed where the verification setting allows."""

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _sign_up(client, email: str):
    return client.post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def test_with_mandatory_verification_a_taken_email_signs_up_like_a_new_one(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_user("taken@example.com")

    taken = _sign_up(Client(), "taken@example.com")
    new = _sign_up(Client(), "fresh@example.com")

    assert taken.status_code == new.status_code == 302
    assert taken["Location"] == new["Location"] == reverse("account_email_verification_sent")
    assert User.objects.filter(email="taken@example.com").count() == 1
    taken_mail, new_mail = mail.outbox
    assert taken_mail.to == ["taken@example.com"]
    assert "already" in taken_mail.body.lower()  # the owner learns someone tried
    assert new_mail.to == ["fresh@example.com"]


def test_with_mandatory_verification_the_taken_email_page_says_nothing_of_it(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_user("taken@example.com")
    client = Client()
    page = client.get(_sign_up(client, "taken@example.com")["Location"])
    assert b"already registered" not in page.content


def test_a_password_reset_answers_the_same_for_an_unknown_email(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_user("ada@example.com")
    known = client.post(reverse("account_reset_password"), {"email": "ada@example.com"})
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]


def test_without_verification_a_taken_email_is_refused_openly(client):
    # The documented trade-off: a new account logs in at once, so allauth cannot pretend.
    make_user("taken@example.com")
    response = _sign_up(client, "taken@example.com")
    assert response.status_code == 200
    assert b"already registered" in response.content
