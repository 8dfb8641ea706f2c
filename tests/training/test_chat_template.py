"""A worker asks base and tuned model with the template the run's dataset trained on."""

import pytest

from tests.factories import make_base_model, make_dataset, make_project, make_run
from training.engine.inference.chat import encode_prompt
from training.jobs import chat
from training.models import ChatExchange, Run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def save_fresh_adapter(model_dir, folder) -> None:
    """A real (untrained) LoRA adapter of the bundled model, as a completed run leaves."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder)


def test_chat_after_an_alpaca_run_prompts_in_alpaca_form(bundled_model_dir, user):
    project = make_project(owner=user)
    dataset = make_dataset(project)
    dataset.template = "alpaca"
    dataset.save()
    run = make_run(
        project=project,
        dataset=dataset,
        base_model=make_base_model(name="bundled", path=str(bundled_model_dir)),
        status=Run.Status.COMPLETED,
    )
    save_fresh_adapter(bundled_model_dir, run.adapter_dir)
    exchange = ChatExchange.objects.create(
        run=run, owner=user, prompt="What is 2 + 2?", max_new_tokens=6
    )

    chat.answer_chat(exchange.pk)

    exchange.refresh_from_db()
    assert exchange.status == ChatExchange.Status.DONE, exchange.error
    assert exchange.base_answer and exchange.tuned_answer
    model = chat.chat_model(run)  # the worker's cached model for this run
    asked = model._inputs(exchange.messages())["input_ids"][0].tolist()
    expected = encode_prompt(model.tokenizer, exchange.messages(), "alpaca")["input_ids"][0]
    assert asked == expected.tolist()
    assert model.tokenizer.decode(asked).endswith("### Response:\n")


def test_a_chat_message_delivered_twice_is_answered_once(
    bundled_model_dir, user, broker, run_queued, monkeypatch
):
    from training.actors import chat_reply
    from training.engine.inference.chat import ChatModel

    project = make_project(owner=user)
    run = make_run(
        project=project,
        dataset=make_dataset(project),
        base_model=make_base_model(name="bundled", path=str(bundled_model_dir)),
        status=Run.Status.COMPLETED,
    )
    save_fresh_adapter(bundled_model_dir, run.adapter_dir)
    exchange = ChatExchange.objects.create(run=run, owner=user, prompt="Hi", max_new_tokens=4)
    answered = []
    compare = ChatModel.compare
    monkeypatch.setattr(
        ChatModel, "compare", lambda self, *a, **k: answered.append(1) or compare(self, *a, **k)
    )

    message = chat_reply.message(exchange.pk)
    broker.enqueue(message)
    broker.enqueue(message)  # the same message again, as a redelivery brings it
    assert run_queued(chat_reply.queue_name) == ["chat_reply", "chat_reply"]

    exchange.refresh_from_db()
    assert exchange.status == ChatExchange.Status.DONE, exchange.error
    assert exchange.tuned_answer and len(answered) == 1
