"""Tokenizer training on the CPU worker: the dataset's text into a byte-level BPE."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from designer import events
from designer.models import TrainedTokenizer
from slmlab.jobs import JobStatus
from training.engine.data.formats import read_raw
from training.engine.design import tokenizer as design_tokenizer

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The tokenizer row was deleted or cancelled while it trained."""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def dataset_texts(path: str, fmt: str, text_split: str) -> list[str]:
    """Every text of a dataset's records (all string fields, in order), one per record."""
    texts = []
    for _line, record, problem in read_raw(path, fmt, text_split):
        if problem is None and record is not None:
            text = "\n".join(_strings(record))
            if text.strip():
                texts.append(text)
    return texts


def train(tokenizer_id: int) -> None:
    """Claim and train one tokenizer; safe to run twice (the second does nothing)."""
    job = TrainedTokenizer.objects.select_related("dataset").filter(pk=tokenizer_id).first()
    if job is None or not job.claim():
        return
    events.publish_tokenizer(job.pk)
    last = [0.0]

    def progress(share: float) -> None:
        if share - last[0] < 0.05 and share < 1.0:
            return
        last[0] = share
        if not job.report(progress=share):
            raise Cancelled
        events.publish_tokenizer(job.pk)

    try:
        dataset = job.dataset
        texts = dataset_texts(dataset.file.path, dataset.file_format, dataset.text_split)
        if not texts:
            raise ValueError("the dataset has no text to train a tokenizer on")
        trained = design_tokenizer.train_tokenizer(
            texts, job.vocab_size, job.folder, total=len(texts), progress=progress
        )
        ratio = design_tokenizer.tokens_per_word(trained, texts)
        (job.folder / "stats.json").write_text(json.dumps({"tokens_per_word": ratio}))
    except BaseException as exc:  # also the time limit: never leave it "running"
        if not TrainedTokenizer.objects.filter(pk=tokenizer_id, status=JobStatus.RUNNING).exists():
            logger.info("tokenizer %s went away; stopped", tokenizer_id)
        else:
            logger.exception("tokenizer %s failed", tokenizer_id)
            job.fail(f"{type(exc).__name__}: {exc}")
            events.publish_tokenizer(job.pk)
        if not isinstance(exc, Exception):
            raise
        return
    job.finish(progress=1.0, trained_vocab_size=trained.get_vocab_size(), tokens_per_word=ratio)
    events.publish_tokenizer(job.pk)
