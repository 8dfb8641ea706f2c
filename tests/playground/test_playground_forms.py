"""The Playground's settings and message forms: clear messages next to the field."""

from __future__ import annotations

import pytest

from playground.forms import MessageForm, SettingsForm, model_options
from tests.factories import make_base_model, make_project, make_run
from training.models import Run

pytestmark = pytest.mark.django_db


def tuned_run(owner, **extra) -> Run:
    run = make_run(make_project(owner=owner), status=Run.Status.COMPLETED, **extra)
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    return run


def settings_data(**overrides) -> dict:
    data = {
        "model_1": "SmolLM2-135M-Instruct",
        "model_2": "",
        "model_3": "",
        "model_4": "",
        "system_prompt": "",
        "temperature": "0.7",
        "top_p": "1",
        "top_k": "0",
        "repetition_penalty": "1",
        "max_new_tokens": "64",
        "stop": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def store_model(db):
    return make_base_model(context_length=2048)


def test_it_offers_the_store_models_and_only_the_users_own_tuned_runs(
    user, other_user, store_model
) -> None:
    mine = tuned_run(user, name="mine")
    tuned_run(other_user, name="theirs")
    make_run(make_project(owner=user), name="unfinished")

    ids = [model_id for model_id, _label, _context in model_options(user)]

    assert ids == [store_model.name, f"run-{mine.pk}"]


def test_valid_settings_become_conversation_fields(user, store_model) -> None:
    run = tuned_run(user)
    form = SettingsForm(
        settings_data(model_2=f"run-{run.pk}", stop="###\nUser:\n", system_prompt="Be brief."),
        user=user,
    )

    assert form.is_valid(), form.errors
    assert form.settings() == {
        "model_ids": [store_model.name, f"run-{run.pk}"],
        "system_prompt": "Be brief.",
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "max_new_tokens": 64,
        "stop": ["###", "User:"],
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", "2.5", "less than or equal to 2"),
        ("temperature", "-1", "greater than or equal to 0"),
        ("top_p", "0", "greater than or equal to 0.01"),
        ("top_k", "5000", "less than or equal to 1000"),
        ("repetition_penalty", "3", "less than or equal to 2"),
        ("max_new_tokens", "0", "greater than or equal to 1"),
        ("max_new_tokens", "2048", "reads at most 2048 tokens"),
        ("stop", "a\nb\nc\nd\ne", "At most 4 stop strings"),
        ("stop", "x" * 101, "at most 100 characters"),
        ("model_1", "", "This field is required"),
    ],
)
def test_a_setting_out_of_range_is_named_next_to_its_field(
    user, store_model, field, value, message
) -> None:
    form = SettingsForm(settings_data(**{field: value}), user=user)

    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors


def test_another_users_run_is_not_a_choice(user, other_user, store_model) -> None:
    theirs = tuned_run(other_user)
    form = SettingsForm(settings_data(model_2=f"run-{theirs.pk}"), user=user)

    assert not form.is_valid()
    assert "Select a valid choice" in form.errors["model_2"][0]


def test_the_context_limit_is_the_tuned_runs_base_model(user, store_model) -> None:
    small = make_base_model(name="tiny", context_length=128)
    run = tuned_run(user, base_model=small, name="short")
    form = SettingsForm(settings_data(model_2=f"run-{run.pk}", max_new_tokens="200"), user=user)

    assert not form.is_valid()
    assert "short (tuned tiny) reads at most 128 tokens" in form.errors["max_new_tokens"][0]


def test_fixed_models_keep_their_values_whatever_is_posted(user, store_model) -> None:
    other = make_base_model(name="other", context_length=2048)
    initial = {"model_1": store_model.name, "model_2": other.name}
    form = SettingsForm(
        settings_data(model_1=other.name), user=user, models_fixed=True, initial=initial
    )

    assert form.is_valid(), form.errors
    assert form.settings()["model_ids"] == [store_model.name, other.name]


@pytest.mark.parametrize("content", ["", "   \n  "])
def test_an_empty_message_is_refused(content) -> None:
    form = MessageForm({"content": content})

    assert not form.is_valid()
    assert form.errors["content"] == ["Write a message first."]
