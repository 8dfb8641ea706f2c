"""The Playground pages: start, continue, stop, rename and delete conversations."""

from __future__ import annotations

import pytest
from django.urls import reverse

from playground.models import Answer, Conversation, Generation, Turn
from tests.factories import make_base_model, make_project, make_run
from tests.playground.test_playground_forms import settings_data, tuned_run
from training.models import Run

pytestmark = pytest.mark.django_db

PLAYGROUND = reverse("playground:playground")


@pytest.fixture
def base(db):
    return make_base_model(context_length=2048)


@pytest.fixture
def run(user, base):
    return tuned_run(user, name="tuned")


def start(client, run, base, content="Hello there", **settings) -> Conversation:
    data = settings_data(model_1=base.name, model_2=f"run-{run.pk}", **settings)
    response = client.post(PLAYGROUND, {**data, "content": content})
    assert response.status_code == 302, response.content.decode()
    conversation = Conversation.objects.get(pk=response["Location"].rstrip("/").split("/")[-1])
    return conversation


def finish(answer: Answer, output: str) -> None:
    generation = answer.generation
    generation.claim()
    generation.finish(output=output, finish_reason="stop", prompt_tokens=5, completion_tokens=2)


def test_the_top_navigation_links_to_the_playground(owner_client) -> None:
    page = owner_client.get(reverse("playground:keys")).content.decode()
    assert f'href="{PLAYGROUND}" data-testid="nav-playground"' in page


def test_the_run_pages_compare_button_preselects_base_and_tuned(owner_client, run, base) -> None:
    page = owner_client.get(reverse("training:run", args=[run.pk])).content.decode()
    href = f"{PLAYGROUND}?model={base.name}&amp;model=run-{run.pk}"
    assert f'href="{href}" data-testid="compare"' in page

    page = owner_client.get(PLAYGROUND, {"model": [base.name, f"run-{run.pk}"]}).content.decode()
    assert f'<option value="{base.name}" selected>' in page
    assert f'<option value="run-{run.pk}" selected>' in page


def test_a_run_without_an_adapter_has_no_compare_button(owner_client, user) -> None:
    run = make_run(make_project(owner=user))
    page = owner_client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert 'data-testid="compare"' not in page


def test_the_first_message_starts_a_conversation_with_one_generation_per_column(
    owner_client, user, run, base, broker, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        conversation = start(
            owner_client, run, base, system_prompt="Be brief.", temperature="0.3", stop="###"
        )

    assert conversation.owner == user and conversation.title == "Hello there"
    assert conversation.model_ids == [base.name, f"run-{run.pk}"]
    [turn] = conversation.turns.all()
    answers = list(turn.answers.select_related("generation"))
    assert [a.model_id for a in answers] == [base.name, f"run-{run.pk}"]
    assert [a.label for a in answers] == [base.name, f"tuned (tuned {base.name})"]
    for answer in answers:
        generation = answer.generation
        assert generation.owner == user and generation.status == Generation.Status.QUEUED
        assert generation.messages == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ]
        assert generation.sampling["temperature"] == 0.3
        assert generation.sampling["stop"] == ["###"]
    assert broker.queues["chat"].qsize() == 2

    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert f'ws-connect="/ws/playground/{conversation.pk}/"' in page
    assert page.count('data-testid="answer"') == 2


def test_each_column_continues_with_its_own_history(owner_client, run, base, htmx_headers) -> None:
    conversation = start(owner_client, run, base, content="Hi")
    first, second = Answer.objects.order_by("column")
    finish(first, "Hello from base")
    finish(second, "Hello from tuned")

    data = settings_data(model_1="ignored", temperature="0", content="And now?")
    response = owner_client.post(
        reverse("playground:send", args=[conversation.pk]), data, **htmx_headers
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'hx-swap-oob="beforeend:#turns"' in html and "And now?" in html
    assert 'id="composer"' in html
    turn = conversation.turns.last()
    messages = [a.generation.messages for a in turn.answers.order_by("column")]
    assert messages[0][1] == {"role": "assistant", "content": "Hello from base"}
    assert messages[1][1] == {"role": "assistant", "content": "Hello from tuned"}
    assert all(m[-1] == {"role": "user", "content": "And now?"} for m in messages)
    conversation.refresh_from_db()
    # The settings apply to the next message; the models stay.
    assert conversation.temperature == 0.0
    assert conversation.model_ids == [base.name, f"run-{run.pk}"]


def test_an_unanswered_turn_is_left_out_of_the_history(owner_client, run, base) -> None:
    conversation = start(owner_client, run, base, content="Hi")
    owner_client.post(
        reverse("playground:send", args=[conversation.pk]), {**settings_data(), "content": "2nd"}
    )
    generation = conversation.turns.last().answers.get(column=0).generation
    assert generation.messages == [{"role": "user", "content": "2nd"}]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"content": "  "}, "content", "Write a message first."),
        ({"temperature": "3"}, "temperature", "less than or equal to 2"),
        ({"max_new_tokens": "4000"}, "max_new_tokens", "reads at most 2048 tokens"),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_nothing_is_sent(
    owner_client, run, base, htmx_headers, overrides, field, message
) -> None:
    conversation = start(owner_client, run, base)
    data = {**settings_data(), "content": "next", **overrides}

    response = owner_client.post(
        reverse("playground:send", args=[conversation.pk]), data, **htmx_headers
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-field="{field}"' in html and message in html
    assert 'id="composer"' in html
    assert Turn.objects.count() == 1 and Generation.objects.count() == 2

    response = owner_client.post(PLAYGROUND, data, **htmx_headers)
    assert f'data-field="{field}"' in response.content.decode()
    assert Conversation.objects.count() == 1


def test_a_run_deleted_meanwhile_is_refused_with_nothing_saved(
    owner_client, run, base, htmx_headers
) -> None:
    conversation = start(owner_client, run, base)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)

    response = owner_client.post(
        reverse("playground:send", args=[conversation.pk]),
        {**settings_data(), "content": "next"},
        **htmx_headers,
    )

    assert f"The model run-{run.pk} is no longer available." in response.content.decode()
    assert Turn.objects.count() == 1


def test_stop_withdraws_the_answers_still_waiting(owner_client, run, base, htmx_headers) -> None:
    conversation = start(owner_client, run, base)
    done = Answer.objects.get(column=0)
    finish(done, "finished")

    response = owner_client.post(reverse("playground:stop", args=[conversation.pk]), **htmx_headers)

    assert response.status_code == 200 and 'id="turns"' in response.content.decode()
    statuses = dict(Answer.objects.values_list("column", "generation__status"))
    assert statuses == {0: Generation.Status.DONE, 1: Generation.Status.CANCELLED}
    assert 'data-testid="answer-stopped"' in response.content.decode()


def test_conversations_are_listed_renamed_and_deleted(owner_client, user, run, base) -> None:
    conversation = start(owner_client, run, base, content="A question about llamas")
    page = owner_client.get(PLAYGROUND).content.decode()
    assert "A question about llamas" in page

    response = owner_client.post(
        reverse("playground:rename", args=[conversation.pk]), {"title": "Llamas"}
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Llamas"
    response = owner_client.post(reverse("playground:rename", args=[conversation.pk]), {})
    assert "This field is required" in response.content.decode()

    response = owner_client.post(reverse("playground:delete", args=[conversation.pk]))
    assert response.status_code == 302 and response["Location"] == PLAYGROUND
    assert not Conversation.objects.exists() and not Generation.objects.exists()


def test_a_long_first_message_makes_a_short_title(owner_client, run, base) -> None:
    conversation = start(owner_client, run, base, content="word " * 40)
    assert len(conversation.title) == 60 and conversation.title.endswith("…")


# --- Ownership: another user gets 404 and nothing changes; anonymous goes to login ---


def conversation_urls(conversation) -> list[tuple[str, str, dict]]:
    htmx = {"HTTP_HX_REQUEST": "true"}
    pk = conversation.pk
    return [
        ("get", reverse("playground:conversation", args=[pk]), {}),
        ("get", reverse("playground:conversation", args=[pk]), htmx),
        ("post", reverse("playground:send", args=[pk]), {}),
        ("post", reverse("playground:send", args=[pk]), htmx),
        ("post", reverse("playground:stop", args=[pk]), {}),
        ("post", reverse("playground:rename", args=[pk]), {}),
        ("post", reverse("playground:delete", args=[pk]), {}),
    ]


def test_every_conversation_url_404s_for_another_user_and_changes_nothing(
    owner_client, other_client, run, base
) -> None:
    conversation = start(owner_client, run, base)
    data = {**settings_data(), "content": "intrusion", "title": "mine now"}
    for method, url, headers in conversation_urls(conversation):
        response = getattr(other_client, method)(url, data, **headers)
        assert response.status_code == 404, url
    conversation.refresh_from_db()
    assert conversation.title == "Hello there" and Turn.objects.count() == 1
    assert Generation.objects.filter(status=Generation.Status.QUEUED).count() == 2
    assert "Hello there" not in other_client.get(PLAYGROUND).content.decode()


def test_another_users_runs_cannot_be_picked_in_a_new_conversation(
    other_client, other_user, run, base
) -> None:
    data = {**settings_data(model_1=f"run-{run.pk}"), "content": "hi"}
    response = other_client.post(PLAYGROUND, data)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    page = other_client.get(PLAYGROUND, {"model": f"run-{run.pk}"}).content.decode()
    assert f'value="run-{run.pk}"' not in page and not Conversation.objects.exists()


def test_every_playground_url_sends_anonymous_users_to_login(client, owner_client, run, base):
    conversation = start(owner_client, run, base)
    urls = [("get", PLAYGROUND, {}), ("post", PLAYGROUND, {})]
    for method, url, headers in urls + conversation_urls(conversation):
        response = getattr(client, method)(url, **headers)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login"))
    assert Conversation.objects.count() == 1
