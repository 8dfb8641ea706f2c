"""Models pretrained in the lab in the Playground and /v1: the pretraining run's own model
(``run-<id>``) and a fine-tune of it (its adapter on that model), for their owner only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from playground import relay, services
from playground.models import Generation
from tests.playground.test_openai_models import _client, _keep_the_test_connection  # noqa: F401
from tests.pretrained import finetune_of, pretrained_run

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Tell me a story."}]


@pytest.fixture
def pretrained(user):
    return pretrained_run(user)


@pytest.fixture
def tuned(pretrained):
    return finetune_of(pretrained)


def test_they_resolve_for_their_owner_only_with_the_designs_context(
    user, other_user, pretrained, tuned
) -> None:
    for run in (pretrained, tuned):
        target = services.resolve_model(user, f"run-{run.pk}")
        assert target.run == run and target.base_model is None
        assert target.context_length == 128  # the design's, not a store model's
        assert services.resolve_model(other_user, f"run-{run.pk}") is None
    with pytest.raises(services.UnknownModel):
        services.start_generation(other_user, f"run-{pretrained.pk}", messages=HELLO, sampling={})
    with pytest.raises(services.InvalidRequest) as caught:  # the design's context, checked
        services.start_generation(
            user, f"run-{pretrained.pk}", messages=HELLO, sampling={"max_new_tokens": 200}
        )
    assert caught.value.param == "max_tokens" and not Generation.objects.exists()


def test_v1_lists_them_for_their_owner_and_another_user_gets_404(
    user, other_user, pretrained, tuned
) -> None:
    import openai

    mine = _client(services.create_key(user, "k")[1])
    ids = [m.id for m in mine.models.list()]
    assert f"run-{pretrained.pk}" in ids and f"run-{tuned.pk}" in ids
    theirs = _client(services.create_key(other_user, "k")[1])
    assert not {f"run-{pretrained.pk}", f"run-{tuned.pk}"} & {m.id for m in theirs.models.list()}
    for run in (pretrained, tuned):
        with pytest.raises(openai.NotFoundError) as caught:
            theirs.models.retrieve(f"run-{run.pk}")
        assert caught.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            theirs.chat.completions.create(model=f"run-{run.pk}", messages=HELLO)


def test_the_playground_offers_them_and_the_run_pages_link_there(
    owner_client, other_client, pretrained, tuned
) -> None:
    playground = reverse("playground:playground")
    page = owner_client.get(playground).content.decode()
    assert f'value="run-{pretrained.pk}"' in page and f'value="run-{tuned.pk}"' in page
    assert "(pretrained in the lab)" in page
    run_page = owner_client.get(pretrained.get_absolute_url()).content.decode()
    assert f'{playground}?model=run-{pretrained.pk}" data-testid="chat-in-playground"' in run_page
    run_page = owner_client.get(tuned.get_absolute_url()).content.decode()
    href = f"{playground}?model=run-{pretrained.pk}&amp;model=run-{tuned.pk}"
    assert f'href="{href}" data-testid="compare"' in run_page
    others = other_client.get(playground, {"model": f"run-{pretrained.pk}"}).content.decode()
    assert f'value="run-{pretrained.pk}"' not in others


def test_the_worker_answers_with_the_pretrained_model_and_with_its_fine_tune(
    user, pretrained, tuned, broker, run_queued, relay_redis, django_capture_on_commit_callbacks
) -> None:
    generations = []
    for run, request in (
        (pretrained, {"messages": HELLO}),
        (pretrained, {"prompt": "Once upon a time"}),
        (tuned, {"messages": HELLO}),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            generations.append(
                services.start_generation(
                    user, f"run-{run.pk}", **request, sampling={"max_new_tokens": 6}
                )
            )
    assert run_queued("chat") == ["answer"] * 3

    for generation in generations:
        events = list(relay.listen_sync(generation.pk, 10))
        generation.refresh_from_db()
        assert generation.status == Generation.Status.DONE, generation.error
        assert generation.base_model is None and 0 < generation.completion_tokens <= 6
        assert "".join(e["text"] for e in events if e["type"] == "token") == generation.output
    # The fine-tune's adapter changes the answer of its base.
    assert generations[0].output != generations[2].output
