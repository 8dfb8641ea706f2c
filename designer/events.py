"""Live fragments of the designer pages, pushed to whoever follows them."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string

from designer.models import TrainedTokenizer
from slmlab.consumers import push_to_group


def tokenizer_group(tokenizer_id: int) -> str:
    return f"tokenizer-{tokenizer_id}"


def render_tokenizer_status(job: TrainedTokenizer) -> str:
    return render_to_string("designer/tokenizer_detail.html#status", {"tokenizer": job})


def publish_tokenizer(tokenizer_id: int) -> None:
    def send() -> None:
        job = TrainedTokenizer.objects.filter(pk=tokenizer_id).first()
        if job is not None:
            push_to_group(tokenizer_group(tokenizer_id), render_tokenizer_status(job))

    transaction.on_commit(send)
