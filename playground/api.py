"""The OpenAI-compatible API under /v1, authenticated by API keys.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with its
status codes. A model id is stable: a store model's name, or ``run-<id>`` for one of the
caller's runs that saved an adapter (that adapter on its base). Another user's run id is
answered exactly like an id that does not exist.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from playground import ratelimit, services
from projects.models import BaseModel
from training.models import Run

RUN_PREFIX = "run-"


def error(status: int, message: str, type_: str, code: str | None = None, param=None):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JsonResponse(body, status=status)


def api_key_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        key = services.bearer_key(request)
        if key is None:
            return error(
                401,
                _("Incorrect or missing API key. Create one on your account's API keys page."),
                "invalid_request_error",
                "invalid_api_key",
            )
        if not ratelimit.allow(key.digest):
            response = error(
                429,
                _("Rate limit reached for this API key: at most %(n)d requests a minute.")
                % {"n": settings.SLMLAB_API_RATE_LIMIT},
                "requests",
                "rate_limit_exceeded",
            )
            response["Retry-After"] = str(ratelimit.WINDOW_S)
            return response
        request.user = key.owner
        request.api_key = key
        return view(request, *args, **kwargs)

    return wrapper


def _run_models(user):
    runs = Run.objects.filter(
        owner=user, status__in=[Run.Status.COMPLETED, Run.Status.TIMED_OUT]
    ).select_related("base_model", "base_run")
    return [run for run in runs if run.has_adapter]


def _store_entry(model: BaseModel) -> dict:
    created = int(model.created.timestamp())
    return {"id": model.name, "object": "model", "created": created, "owned_by": "slmlab"}


def _run_entry(run: Run) -> dict:
    created = int((run.finished or run.created).timestamp())
    return {
        "id": f"{RUN_PREFIX}{run.pk}",
        "object": "model",
        "created": created,
        "owned_by": "user",
    }


def model_entry(user, model_id: str) -> dict | None:
    """The caller's model with this id, or None (also for another user's run)."""
    if model_id.startswith(RUN_PREFIX) and model_id[len(RUN_PREFIX) :].isdigit():
        run = next((r for r in _run_models(user) if r.pk == int(model_id[len(RUN_PREFIX) :])), None)
        return _run_entry(run) if run else None
    model = BaseModel.objects.filter(name=model_id).first()
    return _store_entry(model) if model else None


def model_not_found(model_id: str) -> JsonResponse:
    return error(
        404,
        _("The model '%(id)s' does not exist or you do not have access to it.") % {"id": model_id},
        "invalid_request_error",
        "model_not_found",
        "model",
    )


@require_GET
@api_key_required
def models(request: HttpRequest) -> JsonResponse:
    data = [_store_entry(m) for m in BaseModel.objects.order_by("name")]
    data += [_run_entry(r) for r in _run_models(request.user)]
    return JsonResponse({"object": "list", "data": data})


@require_GET
@api_key_required
def model(request: HttpRequest, model_id: str) -> JsonResponse:
    entry = model_entry(request.user, model_id)
    return JsonResponse(entry) if entry else model_not_found(model_id)
