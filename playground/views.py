"""The API keys page: create (shown once), list and revoke the user's keys."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from playground import services
from playground.forms import ApiKeyForm
from playground.models import ApiKey


def _keys_page(request: HttpRequest, form: ApiKeyForm, new_key: str = "", status: int = 200):
    return render(
        request,
        "playground/keys.html",
        {"keys": request.user.api_keys.all(), "form": form, "new_key": new_key},
        status=status,
    )


@login_required
def keys(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _keys_page(request, ApiKeyForm())
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, form, status=400)
    _key, raw = services.create_key(request.user, form.cleaned_data["name"])
    # Rendered, not redirected: this response is the only place the raw key ever appears.
    response = _keys_page(request, ApiKeyForm(), new_key=raw)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, owner=request.user)
    if key.revoke():
        messages.success(request, _("The key “%(name)s” is revoked.") % {"name": key.name})
    return redirect("playground:keys")
