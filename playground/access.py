"""Views that a script may call with an API key instead of a login session."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from playground import services


def login_or_api_key(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Accept ``Authorization: Bearer <key>`` (acting as the key's owner) or a session;
    a header with a wrong or revoked key gets 401, not a login page."""
    session_view = login_required(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if "Authorization" not in request.headers:
            return session_view(request, *args, **kwargs)
        key = services.bearer_key(request)
        if key is None:
            return JsonResponse({"error": _("Invalid or revoked API key.")}, status=401)
        request.user = key.owner
        return view(request, *args, **kwargs)

    return wrapper
