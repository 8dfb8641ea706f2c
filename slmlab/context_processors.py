from django.conf import settings
from django.http import HttpRequest


def lab(request: HttpRequest) -> dict:
    return {"signup_open": settings.SLMLAB_SIGNUP_OPEN}
