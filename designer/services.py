"""Designer workflows that enqueue work: tokenizer training."""

from __future__ import annotations

from django.db import transaction

from designer import actors
from designer.models import TrainedTokenizer
from projects.models import Dataset


def start_tokenizer(dataset: Dataset, vocab_size: int) -> TrainedTokenizer:
    job = TrainedTokenizer.objects.create(
        owner=dataset.owner, project=dataset.project, dataset=dataset, vocab_size=vocab_size
    )
    transaction.on_commit(lambda: actors.train_tokenizer.send(job.pk))
    return job
