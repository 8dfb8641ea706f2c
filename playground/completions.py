"""``POST /v1/chat/completions`` and ``POST /v1/completions``, in OpenAI's formats.

The web process only relays: it checks the request, queues a Generation for a worker
(``services.start_generation``) and passes on the worker's events (``relay``), as one
JSON object or, with ``stream: true``, as server-sent events in OpenAI's chunk format
ending with ``data: [DONE]``. The views are asynchronous so that a streamed answer holds
no thread while it waits for tokens, and so that a client that goes away is noticed
(Django cancels the view or the stream on ``http.disconnect``): the generation is then
cancelled and its worker stops after its next token.

Until the first event arrives the response has not started, so an error the worker
finds first (the prompt and ``max_tokens`` do not fit the model's context) is still an
HTTP 400; later errors are sent as an ``error`` event, as OpenAI does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from playground import relay, services
from playground.api import authorize, error, model_not_found
from playground.models import Generation

# OpenAI's default max_tokens for a completion; a chat answer may be longer.
DEFAULT_MAX_TOKENS = {Generation.Kind.COMPLETION: 16, Generation.Kind.CHAT: 512}
# The request's sampling parameters and the names Sampling gives them. top_k and
# repetition_penalty are not OpenAI's, but vLLM's and llama.cpp's servers take them too.
SAMPLING_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
    "stop": "stop",
    "seed": "seed",
}


def bad_request(message: str, param: str | None = None) -> JsonResponse:
    return error(400, message, "invalid_request_error", None, param)


class Request:
    """A checked request: the queued generation and how to answer."""

    def __init__(self, generation: Generation, stream: bool, include_usage: bool) -> None:
        self.generation, self.stream, self.include_usage = generation, stream, include_usage
        self.id = ("chatcmpl-" if generation.kind == Generation.Kind.CHAT else "cmpl-") + str(
            generation.pk
        )
        self.created = int(generation.created.timestamp())

    @property
    def is_chat(self) -> bool:
        return self.generation.kind == Generation.Kind.CHAT

    def object(self, chunk: bool) -> str:
        if self.is_chat:
            return "chat.completion.chunk" if chunk else "chat.completion"
        return "text_completion"

    def envelope(self, choices: list[dict], chunk: bool, **extra: Any) -> dict:
        return {
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.generation.model_id,
            "choices": choices,
            **extra,
        }

    def choice(self, text: str | None, finish_reason: str | None, chunk: bool) -> dict:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
        if not self.is_chat:
            choice["text"] = text or ""
        elif not chunk:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["delta"] = {} if text is None else {"content": text}
        return choice


def _sampling(body: dict, kind: str) -> dict:
    sampling = {"temperature": 1.0, "max_new_tokens": DEFAULT_MAX_TOKENS[kind]}
    for param, field in SAMPLING_PARAMS.items():
        if body.get(param) is not None:
            sampling[field] = body[param]
    return sampling


def _prompt(body: dict) -> str | HttpResponse:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        return bad_request(_("prompt must be a string (one prompt per request)."), "prompt")
    return prompt


def _start(request: HttpRequest, kind: str) -> Request | HttpResponse:
    """Authenticate, parse and check the request, and queue its generation."""
    denied = authorize(request)
    if denied is not None:
        return denied
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return bad_request(_("The request body is not valid JSON."))
    if not isinstance(body, dict):
        return bad_request(_("The request body must be a JSON object."))
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return bad_request(_("model is required: one of the ids /v1/models lists."), "model")
    if body.get("n") not in (None, 1):
        return bad_request(_("Only one choice per request is supported (n = 1)."), "n")
    inputs: dict[str, Any] = {"messages": body.get("messages")}
    if kind == Generation.Kind.COMPLETION:
        prompt = _prompt(body)
        if isinstance(prompt, HttpResponse):
            return prompt
        inputs = {"prompt": prompt}
    try:
        generation = services.start_generation(
            request.user, model_id, sampling=_sampling(body, kind), **inputs
        )
    except services.UnknownModel:
        return model_not_found(model_id)
    except services.InvalidRequest as exc:
        return bad_request(exc.message, exc.param)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return Request(generation, bool(body.get("stream")), include_usage)


@contextlib.asynccontextmanager
async def _events(generation_id: int) -> AsyncIterator[AsyncIterator[dict]]:
    """The generation's events; leaving before its last one (the client went away, or an
    error here) cancels it."""
    state = {"ended": False}

    async def events() -> AsyncIterator[dict]:
        async with contextlib.aclosing(relay.listen(generation_id)) as listened:
            async for event in listened:
                state["ended"] = event["type"] in relay.FINAL
                yield event

    iterator = events()
    try:
        yield iterator
    finally:
        await iterator.aclose()
        if not state["ended"]:
            # A quick local call, made synchronously: an await here could be cut short
            # by the cancellation that brought us here.
            relay.cancel(generation_id)


def worker_error(event: dict) -> JsonResponse:
    if event.get("param"):
        return bad_request(event["message"], event["param"])
    return error(500, event["message"], "server_error")


def no_answer() -> JsonResponse:
    return error(503, _("No worker answered in time; try again later."), "server_error")


async def _whole(req: Request) -> JsonResponse:
    text, done = [], None
    async with _events(req.generation.pk) as events:
        try:
            async for event in events:
                if event["type"] == "token":
                    text.append(event["text"])
                elif event["type"] == "error":
                    return worker_error(event)
                else:
                    done = event
        except relay.RelayTimeout:
            return no_answer()
    choice = req.choice("".join(text), done["finish_reason"], chunk=False)
    return JsonResponse(req.envelope([choice], chunk=False, usage=done["usage"]))


def _sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


async def _chunks(req: Request, first: dict, events: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    """SSE chunks from the first event on, then ``[DONE]``."""
    if req.is_chat:
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        yield _sse(req.envelope([{**role, "logprobs": None}], chunk=True))
    event: dict | None = first
    while event is not None:
        if event["type"] == "token":
            yield _sse(req.envelope([req.choice(event["text"], None, chunk=True)], chunk=True))
        elif event["type"] == "error":
            yield _sse({"error": {"message": event["message"], "type": "server_error"}})
            return
        else:
            choice = req.choice(None, event["finish_reason"], chunk=True)
            yield _sse(req.envelope([choice], chunk=True))
            if req.include_usage:
                yield _sse(req.envelope([], chunk=True, usage=event["usage"]))
            yield _sse("[DONE]")
            return
        try:
            event = await anext(events, None)
        except relay.RelayTimeout:
            message = _("The worker stopped answering.")
            yield _sse({"error": {"message": message, "type": "server_error"}})
            return


async def _streamed(req: Request) -> HttpResponse:
    stack = contextlib.AsyncExitStack()
    events = await stack.enter_async_context(_events(req.generation.pk))
    try:
        first = await anext(events)
    except relay.RelayTimeout:
        await stack.aclose()
        return no_answer()
    except BaseException:
        await stack.aclose()
        raise
    if first["type"] == "error":
        await stack.aclose()
        return worker_error(first)

    async def body() -> AsyncIterator[bytes]:
        async with stack:
            async for chunk in _chunks(req, first, events):
                yield chunk

    response = StreamingHttpResponse(body(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
    return response


async def _answer(request: HttpRequest, kind: str) -> HttpResponse:
    started = await sync_to_async(_start)(request, kind)
    if isinstance(started, HttpResponse):
        return started
    return await (_streamed(started) if started.stream else _whole(started))


@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, Generation.Kind.CHAT)


@csrf_exempt
@require_POST
async def completions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, Generation.Kind.COMPLETION)
