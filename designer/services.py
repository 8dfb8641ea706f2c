"""Designer workflows that enqueue work: tokenizer training, pretraining runs."""

from __future__ import annotations

from django.db import transaction

from designer import actors
from designer.forms import PretrainForm
from designer.models import TrainedTokenizer
from projects.models import Dataset
from training import services as training_services
from training.models import Run


def start_tokenizer(dataset: Dataset, vocab_size: int) -> TrainedTokenizer:
    job = TrainedTokenizer.objects.create(
        owner=dataset.owner, project=dataset.project, dataset=dataset, vocab_size=vocab_size
    )
    transaction.on_commit(lambda: actors.train_tokenizer.send(job.pk))
    return job


def start_pretraining(form: PretrainForm) -> Run:
    """Queue the pretraining of the form's design: a Run on the same queue as fine-tunes."""
    design, data = form.design, form.cleaned_data
    return training_services.start_run(
        owner=design.owner,
        project=design.project,
        dataset=data["dataset"],
        base_model=None,
        name=data["name"],
        config=form.config(),
        kind=Run.Kind.PRETRAIN,
        design=design,
        tokenizer=data["tokenizer"],
    )
