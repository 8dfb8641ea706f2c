"""/v1 with the official ``openai`` client against real processes: daphne, an embedded
Redis and a Dramatiq worker answering with the bundled model and a tuned run."""

from __future__ import annotations

import openai
import pytest

from tests.playground.servinglab import ServingLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HELLO = [{"role": "user", "content": "Say hello in one word."}]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, bundled_model_dir):
    serving = ServingLab(tmp_path_factory.mktemp("serving"))
    yield serving
    serving.close()
    # No view died on the way (a disconnect must end quietly too).
    web_log = (serving.data_dir / "web.log").read_text()
    assert "Exception inside application" not in web_log and "Traceback" not in web_log, web_log


def client(lab: ServingLab, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=key or lab.key, base_url=lab.url + "/v1", max_retries=0, timeout=300
    )


def generation_id(response_id: str) -> int:
    return int(response_id.rsplit("-", 1)[1])


def test_it_lists_the_store_model_and_the_tuned_run(lab) -> None:
    ids = [m.id for m in client(lab).models.list()]
    assert ids == [lab.base_name, lab.run_model]
    assert [m.id for m in client(lab, lab.other_key).models.list()] == [lab.base_name]


def test_a_non_streamed_chat_completion_with_the_tuned_run(lab) -> None:
    answer = client(lab).chat.completions.create(
        model=lab.run_model, messages=HELLO, max_tokens=6, temperature=0
    )

    choice = answer.choices[0]
    assert answer.object == "chat.completion" and answer.model == lab.run_model
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < answer.usage.completion_tokens <= 6 and answer.usage.prompt_tokens > 0
    row = lab.generation(generation_id(answer.id))
    assert row["status"] == "done" and row["output"] == choice.message.content


def test_a_streamed_chat_completion_arrives_in_chunks_and_matches_the_whole_answer(lab) -> None:
    api = client(lab)
    settings = {"model": lab.run_model, "messages": HELLO, "max_tokens": 8, "temperature": 0}
    whole = api.chat.completions.create(**settings).choices[0].message.content

    stream = api.chat.completions.create(
        **settings, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1 and "".join(pieces) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens <= 8 and not chunks[-1].choices


def test_a_completion_with_the_store_model(lab) -> None:
    answer = client(lab).completions.create(
        model=lab.base_name, prompt="1, 2, 3, 4,", max_tokens=5, temperature=0
    )

    assert answer.object == "text_completion"
    assert answer.choices[0].text.strip().startswith("5")
    assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 5


def test_a_wrong_key_is_401(lab) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(lab, "slm-wrong").chat.completions.create(model=lab.base_name, messages=HELLO)
    assert caught.value.code == "invalid_api_key"


def test_another_users_run_is_404_and_reveals_nothing(lab) -> None:
    errors = []
    for model_id in (lab.run_model, "run-999999"):
        with pytest.raises(openai.NotFoundError) as caught:
            client(lab, lab.other_key).chat.completions.create(model=model_id, messages=HELLO)
        errors.append(caught.value.body)

    # The same answer as for an id that does not exist, but for the id itself.
    assert errors[0]["message"].replace(lab.run_model, "ID") == errors[1]["message"].replace(
        "run-999999", "ID"
    )
    assert {k: v for k, v in errors[0].items() if k != "message"} == {
        k: v for k, v in errors[1].items() if k != "message"
    }
    assert errors[0]["code"] == "model_not_found" and errors[0]["param"] == "model"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages[0]"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(lab, extra, param) -> None:
    request = {"model": lab.base_name, "messages": HELLO, **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client(lab).chat.completions.create(**request)
    assert caught.value.body["param"] == param and caught.value.body["message"]


def test_a_prompt_that_does_not_fit_the_context_is_400_from_the_worker(lab) -> None:
    long = [{"role": "user", "content": "word " * 6000}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            client(lab).chat.completions.create(
                model=lab.base_name, messages=long, max_tokens=4000, stream=stream
            )
        assert caught.value.body["param"] == "max_tokens"
        assert "context" in caught.value.body["message"]


def test_a_client_that_disconnects_mid_stream_stops_the_worker(lab) -> None:
    stream = client(lab).completions.create(
        model=lab.base_name,
        prompt="1, 2, 3, 4, 5, 6, 7,",
        max_tokens=1000,
        temperature=0,
        stream=True,
    )
    first = [next(stream) for _ in range(3)]
    stream.close()

    row = lab.wait_for(
        lambda: (r := lab.generation(generation_id(first[0].id)))["finished"] and r,
        120,
        "the cancelled generation to end",
    )
    assert row["status"] == "cancelled" and row["finish_reason"] == "cancelled"
    assert 3 <= row["completion_tokens"] < 1000
