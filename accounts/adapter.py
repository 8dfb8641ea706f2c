from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Invite-only labs set SLMLAB_SIGNUP_OPEN=0; operators then add users in the admin.
        return settings.SLMLAB_SIGNUP_OPEN
