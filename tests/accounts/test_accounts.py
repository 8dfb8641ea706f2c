import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_it_signs_up_with_email_and_password_and_logs_in(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "Ada@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "ada@example.com"
    assert client.get(reverse("projects:list")).status_code == 200


def test_it_rejects_a_duplicate_email_on_sign_up(client):
    make_user("taken@example.com")
    response = client.post(
        reverse("account_signup"),
        {"email": "taken@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 200
    assert User.objects.count() == 1
    assert b"already registered" in response.content


def test_it_logs_in_and_out(client):
    make_user("ada@example.com")
    response = client.post(
        reverse("account_login"), {"login": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("projects:list")
    client.post(reverse("account_logout"))
    assert client.get(reverse("projects:list")).status_code == 302


def test_it_refuses_a_wrong_password(client):
    make_user("ada@example.com")
    response = client.post(
        reverse("account_login"), {"login": "ada@example.com", "password": "nope"}
    )
    assert response.status_code == 200
    assert b"not correct" in response.content


def test_it_closes_sign_up_for_invite_only_labs(client, settings):
    settings.SLMLAB_SIGNUP_OPEN = False
    response = client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert User.objects.count() == 0
    assert b"Sign Up Closed" in response.content or b"closed" in response.content.lower()
    page = client.get(reverse("account_login"))
    assert b'href="/accounts/signup/"' not in page.content.split(b"<main")[0]


def test_it_emails_a_password_reset_link(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_user("ada@example.com")
    response = client.post(reverse("account_reset_password"), {"email": "ada@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_it_rate_limits_failed_logins(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/m/ip"}
    make_user("ada@example.com")
    pages = [
        client.post(reverse("account_login"), {"login": "ada@example.com", "password": "x"})
        for _ in range(4)
    ]
    assert b"Too many failed login attempts" not in pages[0].content
    assert b"Too many failed login attempts" in pages[-1].content
    # Even the right password is refused while the limit holds.
    locked = client.post(
        reverse("account_login"), {"login": "ada@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 200
    assert b"Too many failed login attempts" in locked.content


def test_it_sends_the_admin_login_through_allauth(client):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_it_lets_staff_into_the_admin_and_lists_users_and_projects(client):
    staff = make_user("op@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 200
    assert client.get(reverse("admin:projects_project_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_user_add")).status_code == 200


def test_it_keeps_non_staff_out_of_the_admin(owner_client):
    response = owner_client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 302


def test_the_health_endpoint_answers(client):
    response = client.get(reverse("health"))
    assert response.json() == {"status": "ok"}


def test_a_class_of_40_behind_one_address_signs_in_at_once():
    students = [make_user(f"student{i}@example.com") for i in range(40)]
    for student in students:
        client = Client(REMOTE_ADDR="10.1.2.3")
        # A typo first, as some students make, then the right password.
        client.post(reverse("account_login"), {"login": student.email, "password": "typo"})
        response = client.post(
            reverse("account_login"), {"login": student.email, "password": PASSWORD}
        )
        assert response.status_code == 302, student.email
        assert response["Location"] == reverse("projects:list")


def test_a_class_of_40_behind_one_address_signs_up_at_once():
    for i in range(40):
        client = Client(REMOTE_ADDR="10.1.2.3")
        response = client.post(
            reverse("account_signup"),
            {"email": f"new{i}@example.com", "password1": PASSWORD, "password2": PASSWORD},
        )
        assert response.status_code == 302, i
    assert User.objects.count() == 40


def test_one_account_is_locked_after_five_failures_while_its_classmates_sign_in():
    make_user("target@example.com")
    classmate = make_user("classmate@example.com")
    guesser = Client(REMOTE_ADDR="10.1.2.3")
    for _ in range(5):
        guesser.post(reverse("account_login"), {"login": "target@example.com", "password": "x"})
    locked = Client(REMOTE_ADDR="10.9.9.9").post(
        reverse("account_login"), {"login": "target@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 200
    assert b"Too many failed login attempts" in locked.content
    other = Client(REMOTE_ADDR="10.1.2.3").post(
        reverse("account_login"), {"login": classmate.email, "password": PASSWORD}
    )
    assert other.status_code == 302
