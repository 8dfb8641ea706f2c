"""Generations: resolving a model id, checking a request, the worker's job and its verbs."""

from __future__ import annotations

import pytest

from playground import relay, services
from playground.models import Generation
from tests.factories import make_base_model, make_project, make_run
from training.models import Run

pytestmark = pytest.mark.django_db

HELLO = [{"role": "user", "content": "Say hello."}]


def _tuned_run(owner) -> Run:
    run = make_run(make_project(owner=owner), status=Run.Status.COMPLETED)
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    return run


def test_it_resolves_store_models_and_only_the_callers_runs(user, other_user) -> None:
    base = make_base_model()
    mine, theirs = _tuned_run(user), _tuned_run(other_user)
    untrained = make_run(make_project(owner=user))

    assert services.resolve_model(user, base.name).run is None
    assert services.resolve_model(user, f"run-{mine.pk}").run == mine
    assert services.resolve_model(user, f"run-{mine.pk}").base_model == mine.base_model
    for unknown in (f"run-{theirs.pk}", f"run-{untrained.pk}", "run-x", "nope"):
        assert services.resolve_model(user, unknown) is None


def test_start_generation_saves_the_request_and_queues_it_after_commit(
    user, broker, django_capture_on_commit_callbacks
) -> None:
    run = _tuned_run(user)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.start_generation(
            user, f"run-{run.pk}", messages=HELLO, sampling={"temperature": 0.5, "stop": "\n"}
        )

    assert generation.status == Generation.Status.QUEUED
    assert generation.run == run and generation.kind == Generation.Kind.CHAT
    assert generation.sampling["temperature"] == 0.5 and generation.sampling["stop"] == ["\n"]
    assert broker.queues["chat"].qsize() == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": [{"role": "user", "content": "  "}]}, "messages[0]"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0]"),
        ({"messages": [*HELLO, {"role": "assistant", "content": "Hi"}]}, "messages"),
        ({"prompt": ""}, "prompt"),
        ({"messages": HELLO, "sampling": {"temperature": 2.5}}, "temperature"),
        ({"messages": HELLO, "sampling": {"top_p": 0}}, "top_p"),
        ({"messages": HELLO, "sampling": {"top_k": -1}}, "top_k"),
        ({"messages": HELLO, "sampling": {"repetition_penalty": 3}}, "repetition_penalty"),
        ({"messages": HELLO, "sampling": {"max_new_tokens": 2048}}, "max_tokens"),
        ({"messages": HELLO, "sampling": {"max_new_tokens": 0}}, "max_tokens"),
        ({"messages": HELLO, "sampling": {"stop": ["a"] * 5}}, "stop"),
    ],
)
def test_bad_requests_name_the_parameter_and_save_nothing(user, broker, kwargs, param) -> None:
    make_base_model(context_length=2048)
    kwargs.setdefault("sampling", {})

    with pytest.raises(services.InvalidRequest) as caught:
        services.start_generation(user, "SmolLM2-135M-Instruct", **kwargs)

    assert caught.value.param == param
    assert caught.value.message
    assert not Generation.objects.exists()


def test_another_users_run_is_an_unknown_model(user, other_user) -> None:
    theirs = _tuned_run(other_user)
    with pytest.raises(services.UnknownModel):
        services.start_generation(user, f"run-{theirs.pk}", messages=HELLO, sampling={})


def test_verbs_are_conditional(user) -> None:
    generation = Generation.objects.create(owner=user, model_id="m", base_model=make_base_model())

    assert generation.withdraw() and not generation.claim()
    generation = Generation.objects.create(owner=user, model_id="m", base_model=make_base_model())
    assert generation.claim() and not generation.claim() and not generation.withdraw()
    assert generation.mark_first_token() and not generation.mark_first_token()
    assert generation.finish(
        output="Hi", finish_reason="cancelled", prompt_tokens=3, completion_tokens=1
    )
    generation.refresh_from_db()
    assert generation.status == Generation.Status.CANCELLED and generation.output == "Hi"
    assert not generation.fail("late")


def test_cancelling_a_queued_generation_withdraws_it_a_running_one_sets_the_flag(
    user, relay_redis
) -> None:
    base = make_base_model()
    queued = Generation.objects.create(owner=user, model_id="m", base_model=base)
    running = Generation.objects.create(owner=user, model_id="m", base_model=base)
    running.claim()

    services.cancel_generation(queued)
    services.cancel_generation(running)

    queued.refresh_from_db()
    assert queued.status == Generation.Status.CANCELLED
    assert relay.is_cancelled(running.pk) and not relay.is_cancelled(queued.pk)


@pytest.mark.slow
def test_the_worker_streams_a_tuned_runs_answer_through_the_relay(
    user, broker, run_queued, relay_redis, bundled_model_dir, django_capture_on_commit_callbacks
) -> None:
    from tests.playground.adapters import write_random_adapter

    base = make_base_model(path=str(bundled_model_dir), context_length=8192)
    run = make_run(make_project(owner=user), base_model=base, status=Run.Status.COMPLETED)
    write_random_adapter(bundled_model_dir, run.adapter_dir)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.start_generation(
            user, f"run-{run.pk}", messages=HELLO, sampling={"max_new_tokens": 8}
        )

    assert run_queued("chat") == ["answer"]

    events = list(relay.listen_sync(generation.pk, 10))
    generation.refresh_from_db()
    assert generation.status == Generation.Status.DONE, generation.error
    assert events[-1] == {
        "type": "done",
        "finish_reason": generation.finish_reason,
        "usage": generation.usage,
    }
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert text == generation.output and 0 < generation.completion_tokens <= 8
    assert generation.created <= generation.first_token <= generation.finished
