"""/v1/models through the official ``openai`` client (in-process over WSGI)."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest
from django.core.handlers.wsgi import WSGIHandler

from playground import services
from tests.factories import make_base_model, make_project, make_run
from training.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # As django.test.Client does: the WSGI handler must not close the test's connection.
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


def _tuned_run(owner) -> Run:
    run = make_run(make_project(owner=owner), status=Run.Status.COMPLETED)
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    return run


def test_it_lists_the_store_models_and_the_callers_tuned_runs(user, other_user) -> None:
    mine = _tuned_run(user)
    theirs = _tuned_run(other_user)
    make_run(make_project(owner=user), name="still queued")
    client = _client(services.create_key(user, "k")[1])

    ids = [m.id for m in client.models.list()]

    assert ids == [make_base_model().name, f"run-{mine.pk}"]
    assert f"run-{theirs.pk}" not in ids
    assert client.models.retrieve(f"run-{mine.pk}").id == f"run-{mine.pk}"


def test_a_wrong_key_is_401_in_openais_shape(user) -> None:
    services.create_key(user, "k")

    with pytest.raises(openai.AuthenticationError) as caught:
        _client("slm-wrong").models.list()

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


def test_another_users_model_id_is_404_like_an_unknown_one(user, other_user) -> None:
    theirs = _tuned_run(other_user)
    client = _client(services.create_key(user, "k")[1])

    errors = []
    for model_id in (f"run-{theirs.pk}", "run-999999", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve(model_id)
        errors.append(caught.value)

    assert {e.code for e in errors} == {"model_not_found"}
    assert all(e.body["param"] == "model" for e in errors)
    assert str(theirs.pk) not in str(errors[0].body).replace(f"run-{theirs.pk}", "")


def test_a_key_past_its_rate_limit_gets_429(user, other_user, settings) -> None:
    settings.SLMLAB_API_RATE_LIMIT = 2
    client = _client(services.create_key(user, "k")[1])
    other = _client(services.create_key(other_user, "k")[1])

    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()

    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert other.models.list()  # the limit is per key
