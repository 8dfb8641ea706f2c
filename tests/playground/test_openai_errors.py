"""/v1 completions' errors through the official ``openai`` client, in process: they are
answered before any worker is involved."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest
from django.core.handlers.wsgi import WSGIHandler

from playground import services
from playground.models import Generation
from tests.factories import make_base_model, make_project, make_run
from training.models import Run

pytestmark = pytest.mark.django_db
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _client(key: str) -> openai.OpenAI:
    http = httpx.Client(transport=httpx.WSGITransport(app=WSGIHandler()))
    return openai.OpenAI(
        api_key=key, base_url="http://testserver/v1", http_client=http, max_retries=0
    )


def test_a_wrong_key_is_401_on_both_endpoints(user) -> None:
    api = _client("slm-wrong")
    with pytest.raises(openai.AuthenticationError):
        api.chat.completions.create(model="m", messages=HELLO)
    with pytest.raises(openai.AuthenticationError):
        api.completions.create(model="m", prompt="Hi")


def test_another_users_run_and_unknown_models_are_404(user, other_user) -> None:
    theirs = make_run(make_project(owner=other_user), status=Run.Status.COMPLETED)
    theirs.adapter_dir.mkdir(parents=True)
    (theirs.adapter_dir / "adapter_config.json").write_text("{}")
    api = _client(services.create_key(user, "k")[1])

    for model_id in (f"run-{theirs.pk}", "nope"):
        with pytest.raises(openai.NotFoundError) as caught:
            api.chat.completions.create(model=model_id, messages=HELLO)
        assert caught.value.code == "model_not_found"
    assert not Generation.objects.exists()


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 2048}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"extra_body": {"top_k": 5000}}, "top_k"),
        ({"extra_body": {"repetition_penalty": 0}}, "repetition_penalty"),
    ],
)
def test_bad_parameters_are_400_with_the_parameter(user, extra, param) -> None:
    make_base_model(context_length=2048)
    api = _client(services.create_key(user, "k")[1])

    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="SmolLM2-135M-Instruct", messages=HELLO, **extra)

    assert caught.value.body["param"] == param
    assert caught.value.body["type"] == "invalid_request_error"
    assert not Generation.objects.exists()


def test_an_empty_prompt_is_400(user) -> None:
    make_base_model()
    api = _client(services.create_key(user, "k")[1])
    for prompt in ("", ["a", "b"]):
        with pytest.raises(openai.BadRequestError) as caught:
            api.completions.create(model="SmolLM2-135M-Instruct", prompt=prompt)
        assert caught.value.body["param"] == "prompt"


def test_a_key_past_its_rate_limit_gets_429(user, settings) -> None:
    settings.SLMLAB_API_RATE_LIMIT = 1
    api = _client(services.create_key(user, "k")[1])
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="nope", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        api.chat.completions.create(model="nope", messages=HELLO)
    assert caught.value.code == "rate_limit_exceeded"
