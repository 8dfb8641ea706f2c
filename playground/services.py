"""API keys (create, revoke, authenticate a request) and generations (resolve a model id,
check a request, queue it for a worker, cancel it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from playground import relay
from playground.actors import answer
from playground.models import ApiKey, Generation, digest, new_raw_key
from projects.models import BaseModel
from training.engine.inference.sampling import Sampling, SamplingError
from training.models import Run


def create_key(user, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``; the raw key is returned here and never stored."""
    raw = new_raw_key()
    key = ApiKey.objects.create(owner=user, name=name.strip(), prefix=raw[:10], digest=digest(raw))
    return key, raw


def key_from_raw(raw: str) -> ApiKey | None:
    """The active key ``raw`` belongs to (its owner still active), else None."""
    if not raw:
        return None
    key = (
        ApiKey.objects.select_related("owner")
        .filter(digest=digest(raw), revoked__isnull=True, owner__is_active=True)
        .first()
    )
    if key is not None:
        ApiKey.objects.filter(pk=key.pk).update(last_used=timezone.now())
    return key


def bearer_key(request: HttpRequest) -> ApiKey | None:
    """The key in an ``Authorization: Bearer <key>`` header, if valid."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key_from_raw(raw.strip())


# --- Generations: the Playground and /v1 ask a worker for an answer ---

RUN_PREFIX = "run-"
ROLES = ("system", "user", "assistant")


class InvalidRequest(ValueError):
    """A request a worker should not even see; ``param`` names the parameter at fault
    (OpenAI's ``param``: ``messages``, ``prompt``, ``temperature``, ``max_tokens``, …)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Target:
    """What a worker loads for a model id: a store model, a run's adapter on its base (a
    store model or a model pretrained in the lab), or a pretraining run's own model."""

    model_id: str
    base_model: BaseModel | None
    run: Run | None = None

    @property
    def context_length(self) -> int:
        if self.base_model is not None:
            return self.base_model.context_length
        return self.run.context_length if self.run is not None else 0


def tuned_runs(user):
    """The user's runs /v1 and the Playground can serve: the fine-tunes that saved an
    adapter (on a store model or on a model pretrained in the lab) and the pretraining
    runs that saved their model, newest first."""
    runs = Run.objects.filter(
        owner=user, status__in=[Run.Status.COMPLETED, Run.Status.TIMED_OUT]
    ).select_related("base_model", "base_run", "dataset")
    return [run for run in runs if run.has_model or (run.has_adapter and not run.is_pretraining)]


def base_label(run: Run) -> str:
    """What a served run is, for the model menu."""
    if run.is_pretraining:
        return _("%(run)s (pretrained in the lab)") % {"run": run.name}
    return _("%(run)s (tuned %(base)s)") % {"run": run.name, "base": run.base_name}


def resolve_model(user, model_id: str) -> Target | None:
    """The model ``model_id`` names for ``user``: a store model's name, or ``run-<id>``
    for one of their runs with an adapter or a pretrained model. None when unknown, and
    for another user's run (so an answer reveals nothing about it)."""
    if model_id.startswith(RUN_PREFIX) and model_id[len(RUN_PREFIX) :].isdigit():
        run_id = int(model_id[len(RUN_PREFIX) :])
        run = next((r for r in tuned_runs(user) if r.pk == run_id), None)
        return Target(model_id, run.base_model, run) if run else None
    model = BaseModel.objects.filter(name=model_id).first()
    return Target(model_id, model) if model else None


# OpenAI's names for Sampling's fields, so an error names what the client sent.
API_PARAM = {"max_new_tokens": "max_tokens"}


def check_sampling(sampling: dict, target: Target) -> dict:
    """``sampling`` (Sampling's field names) checked, as the JSON the worker reads."""
    unknown = set(sampling) - {f.name for f in dataclasses.fields(Sampling)}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidRequest(name, _("Unknown sampling setting: %(name)s.") % {"name": name})
    seed = sampling.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed < 2**63):
        raise InvalidRequest("seed", _("seed must be a whole number from 0 to 2^63 - 1."))
    try:
        checked = Sampling(**sampling)
    except SamplingError as exc:
        raise InvalidRequest(API_PARAM.get(exc.param, exc.param), exc.message) from exc
    limit = target.context_length
    if limit and checked.max_new_tokens >= limit:
        raise InvalidRequest(
            "max_tokens",
            _(
                "max_tokens is %(asked)d, but this model's context is %(limit)d tokens "
                "for the prompt and the answer together."
            )
            % {"asked": checked.max_new_tokens, "limit": limit},
        )
    data = dataclasses.asdict(checked)
    data["stop"] = list(checked.stop)
    return data


def _text(content) -> str | None:
    """A message's text: a string, or OpenAI's list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    return None


def check_messages(messages) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages", _("messages must be a non-empty list of messages."))
    checked = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        text = _text(message.get("content")) if isinstance(message, dict) else None
        if role not in ROLES or text is None:
            raise InvalidRequest(
                f"messages[{i}]",
                _("Each message needs a role (system, user or assistant) and text content."),
            )
        if role != "system" and not text.strip():
            raise InvalidRequest(f"messages[{i}]", _("A message cannot be empty."))
        checked.append({"role": role, "content": text})
    if checked[-1]["role"] != "user":
        raise InvalidRequest("messages", _("The last message must be the user's."))
    return checked


def start_generation(
    user,
    model_id: str,
    *,
    messages: list | None = None,
    prompt: str | None = None,
    sampling: dict,
) -> Generation:
    """Check a chat (``messages``) or completion (``prompt``) request and queue it for
    a worker; raise :class:`InvalidRequest` (nothing saved) or :class:`UnknownModel`."""
    target = resolve_model(user, model_id)
    if target is None:
        raise UnknownModel(model_id)
    if (messages is None) == (prompt is None):
        raise InvalidRequest("messages", _("Send either messages or a prompt."))
    checked_sampling = check_sampling(sampling, target)
    if messages is not None:
        kind, checked, text = Generation.Kind.CHAT, check_messages(messages), ""
    else:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest("prompt", _("The prompt cannot be empty."))
        kind, checked, text = Generation.Kind.COMPLETION, [], prompt
    with transaction.atomic():
        generation = Generation.objects.create(
            owner=user,
            model_id=model_id,
            base_model=target.base_model,
            run=target.run,
            kind=kind,
            messages=checked,
            prompt=text,
            sampling=checked_sampling,
        )
        transaction.on_commit(lambda: answer.send(generation.pk))
    return generation


class UnknownModel(LookupError):
    """No model with this id for this user (or another user's run)."""

    def __init__(self, model_id: str) -> None:
        super().__init__(model_id)
        self.model_id = model_id


def cancel_generation(generation: Generation) -> None:
    """Stop a generation: a queued one is withdrawn, a running one stops at its next
    token (its worker records the partial answer)."""
    if not generation.withdraw():
        relay.cancel(generation.pk)
