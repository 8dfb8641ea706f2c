"""Responses that work the same with and without HTMX."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect as plain_redirect
from django_htmx.http import HttpResponseClientRedirect


def redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A client-side redirect for an HTMX request, a normal one otherwise."""
    return HttpResponseClientRedirect(url) if request.htmx else plain_redirect(url)
