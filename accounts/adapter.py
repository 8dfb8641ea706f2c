import logging
import smtplib

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

logger = logging.getLogger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Invite-only labs set SLMLAB_SIGNUP_OPEN=0; operators then add users in the admin.
        return settings.SLMLAB_SIGNUP_OPEN

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Send as allauth does; a mail server that refuses or does not answer gets the
        visitor a page that says so (503) instead of a server error, and the operator
        the reason in the log."""
        try:
            super().send_mail(template_prefix, email, context)
        except (smtplib.SMTPException, OSError) as exc:
            logger.error(
                "could not send %s to %s via %s (%s:%s): %s",
                template_prefix,
                email,
                settings.EMAIL_BACKEND,
                settings.EMAIL_HOST,
                settings.EMAIL_PORT,
                exc,
            )
            page = render(self.request, "account/mail_failed.html", status=503)
            raise ImmediateHttpResponse(page) from exc
