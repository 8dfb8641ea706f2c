"""Workflows that span models or enqueue work. Enqueues happen after commit, only here."""

from django.db import transaction

from accounts.models import User
from projects.models import BaseModel, Dataset, Project
from training import events
from training.actors import chat_reply, generate_text, train_next
from training.models import ChatExchange, Generation, Run
from training.retention import after_run_ended


def start_run(
    *,
    owner: User,
    project: Project,
    dataset: Dataset,
    base_model: BaseModel | None,
    name: str,
    config: dict,
    base_run: Run | None = None,
    kind: str = Run.Kind.FINETUNE,
    design=None,
    tokenizer=None,
) -> Run:
    """Queue a run: a fine-tune of ``base_model`` (or of ``base_run``'s pretrained model),
    or the pretraining of ``design`` with ``tokenizer``; the same queue either way."""
    with transaction.atomic():
        run = Run.objects.create(
            owner=owner,
            project=project,
            dataset=dataset,
            kind=kind,
            base_model=base_model,
            base_run=base_run,
            design=design,
            tokenizer=tokenizer,
            name=name,
            config=config,
            time_limit_s=owner.run_time_limit_hours * 3600,
        )
        transaction.on_commit(lambda: train_next.send(run.pk))
    return run


def cancel_run(run: Run) -> bool:
    changed = run.request_cancel()
    if changed:
        run.logs.create(line="cancel requested by the user")
        after_run_ended(run)  # a queued run is cancelled at once
        events.publish_run(run.pk)
    return changed


def ask_chat(
    run: Run,
    *,
    prompt: str,
    system_prompt: str = "",
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> ChatExchange:
    with transaction.atomic():
        exchange = ChatExchange.objects.create(
            run=run,
            owner=run.owner,
            prompt=prompt,
            system_prompt=system_prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
        )
        transaction.on_commit(lambda: chat_reply.send(exchange.pk))
    return exchange


def ask_generation(run: Run, *, prompt: str, temperature: float, max_new_tokens: int):
    with transaction.atomic():
        generation = Generation.objects.create(
            run=run,
            owner=run.owner,
            prompt=prompt,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
        )
        transaction.on_commit(lambda: generate_text.send(generation.pk))
    events.publish_generations(run.pk)
    return generation


def requeue_run(run: Run) -> Run | None:
    """Operators: an interrupted run resumes with its crash count reset; a final one gets
    a new retry run (it stays as it ended). None for a queued or running run."""
    with transaction.atomic():
        if run.reset_for_requeue():
            queued = run
        elif run.is_final:
            queued = run.retry()
        else:
            return None
        transaction.on_commit(lambda: train_next.send(queued.pk))
    events.publish_run(queued.pk)
    return queued


def release_slot(run_id: int) -> None:
    """A run left the running state: let a worker start the next fair run."""
    transaction.on_commit(lambda: train_next.send(run_id))
