"""Chat answers on a worker: the base model and the tuned model, one loaded model."""

from __future__ import annotations

import logging
from pathlib import Path

from training import events
from training.engine.inference.chat import ChatModel
from training.models import ChatExchange, Run

logger = logging.getLogger(__name__)

# One loaded model per worker process: consecutive chats with the same run reuse it.
_loaded: dict[str, ChatModel] = {}


def chat_model(run: Run) -> ChatModel:
    """The run's base model with its adapter, prompted with the template it trained on."""
    template, custom = run.dataset.template, run.dataset.custom_template
    key = f"{run.base_path}|{run.adapter_dir}|{template}|{custom}"
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = ChatModel(
            Path(run.base_path), run.adapter_dir, template=template, custom_template=custom
        )
    return _loaded[key]


def answer_chat(exchange_id: int) -> None:
    """Claim one exchange and answer it with both models; a second delivery does nothing."""
    exchange = (
        ChatExchange.objects.select_related("run__base_model", "run__base_run", "run__dataset")
        .filter(pk=exchange_id)
        .first()
    )
    if exchange is None or not exchange.claim():
        return
    run = exchange.run
    try:
        answers = chat_model(run).compare(
            exchange.messages(),
            max_new_tokens=exchange.max_new_tokens,
            temperature=exchange.temperature,
            top_p=exchange.top_p,
        )
    except Exception as exc:
        logger.exception("chat %s failed", exchange_id)
        exchange.fail(f"{type(exc).__name__}: {exc}")
    else:
        exchange.finish(base_answer=answers["base"], tuned_answer=answers["tuned"])
    events.publish_chats(run.pk)
