"""Password-reset mail: files in the embedded lab, a clear page when a mail server fails."""

import logging
import socket

import pytest
from django.urls import reverse

from slmlab import lab
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_the_embedded_lab_writes_mail_to_files_and_says_where(tmp_path):
    env: dict[str, str] = {}
    mail_dir = lab.use_file_mail(env, tmp_path)
    assert mail_dir == tmp_path / "mail"
    assert env["EMAIL_BACKEND"] == lab.FILE_MAIL
    assert env["EMAIL_FILE_PATH"] == str(tmp_path / "mail")
    shown = lab.banner("http://localhost:8000/", "demo / pw", mail_dir)
    assert f"Mail      written to files in {tmp_path / 'mail'}/" in shown


def test_the_lab_keeps_a_mail_server_the_environment_names(tmp_path):
    env = {"EMAIL_HOST": "smtp.example.edu"}
    assert lab.use_file_mail(env, tmp_path) is None
    assert env == {"EMAIL_HOST": "smtp.example.edu"}
    assert "Mail" not in lab.banner("http://localhost:8000/", "demo / pw", None)


def test_a_reset_in_the_embedded_lab_leaves_the_link_in_a_file(client, settings, tmp_path):
    env: dict[str, str] = {}
    lab.use_file_mail(env, tmp_path)
    settings.EMAIL_BACKEND = env["EMAIL_BACKEND"]
    settings.EMAIL_FILE_PATH = env["EMAIL_FILE_PATH"]
    make_user("ada@example.com")
    response = client.post(reverse("account_reset_password"), {"email": "ada@example.com"})
    assert response.status_code == 302
    (written,) = (tmp_path / "mail").iterdir()
    assert "/accounts/password/reset/key/" in written.read_text()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_a_mail_server_that_does_not_answer_gets_a_clear_page_not_a_500(client, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = _closed_port()
    make_user("ada@example.com")
    with caplog.at_level(logging.ERROR, logger="accounts.adapter"):
        response = client.post(reverse("account_reset_password"), {"email": "ada@example.com"})
    assert response.status_code == 503
    assert b"could not send the email" in response.content
    assert b'data-testid="mail-failed"' in response.content
    (record,) = [r for r in caplog.records if r.name == "accounts.adapter"]
    assert record.exc_info is None  # the reason in one line, no traceback
    assert "password_reset_key" in record.getMessage()
    assert f"127.0.0.1:{settings.EMAIL_PORT}" in record.getMessage()


def test_production_settings_keep_smtp():
    from slmlab import settings as production

    assert production.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
