"""Dataset statistics on a worker, and the histogram the statistics page draws."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from projects.models import Dataset, DatasetStats
from training.engine.config import RunConfig
from training.engine.data import encode_record, iter_records
from training.engine.stats import dataset_stats

logger = logging.getLogger(__name__)


def default_max_len() -> int:
    """The run form's default max sequence length, so the first statistics match a default run."""
    return next(f.default for f in dataclasses.fields(RunConfig) if f.name == "max_seq_len")


def dataset_pairs(dataset: Dataset, tokenizer: Any) -> Iterator[tuple[dict, dict]]:
    """(row fields, untruncated example) for each row of a stored, validated dataset,
    read and rendered with the dataset's own format, shape, mapping and template."""
    spec = dataset.spec()
    for record, _problems in iter_records(dataset.file.path, spec):
        if record is None:
            continue
        ids, labels = encode_record(tokenizer, record, spec.template, spec.custom_template)
        if record.fields:
            row = dict(record.fields)
        else:  # chats and plain text: their parts are the fields
            row = {k: v for k, v in record.to_dict().items() if k != "fields"}
        if not row.get("system"):
            row.pop("system", None)  # optional everywhere: a missing one is no data problem
        # Plain text is cut into windows by training, not truncated (data.tokenize_record).
        yield row, {"input_ids": ids, "labels": labels, "windowed": record.text is not None}


@functools.lru_cache(maxsize=4)
def load_tokenizer(model_dir: str) -> Any:
    from transformers import AutoTokenizer

    from training.engine.store import check_safe_model_dir

    check_safe_model_dir(Path(model_dir))
    return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)


def compute(stats_id: int) -> None:
    """Claim and compute one statistics row; safe to run twice (the second does nothing)."""
    stats = DatasetStats.objects.select_related("dataset", "base_model").filter(pk=stats_id).first()
    if stats is None or not stats.claim():
        return

    def progress(rows_done: int) -> None:
        DatasetStats.objects.filter(pk=stats.pk).update(rows_done=rows_done)

    try:
        tokenizer = load_tokenizer(stats.base_model.path)
        pairs = dataset_pairs(stats.dataset, tokenizer)
        result = dataset_stats(pairs, stats.max_len, progress)
    except BaseException as exc:  # also the time limit: never leave it "computing"
        logger.exception("statistics %s failed", stats_id)
        stats.status = DatasetStats.Status.FAILED
        stats.error = f"{type(exc).__name__}: {exc}"[:2000]
        stats.save(update_fields=["status", "error", "updated"])
        if not isinstance(exc, Exception):
            raise
        return
    stats.result = result
    stats.rows_done = result["rows"]
    stats.status = DatasetStats.Status.DONE
    stats.save(update_fields=["result", "rows_done", "status", "updated"])


def histogram_chart(result: dict, width: int = 640, height: int = 220) -> dict:
    """Bars of the token-length histogram and the max-length line, in SVG coordinates."""
    pad_l, pad_r, pad_t, pad_b = 48, 12, 12, 28
    bucket = result["histogram"]["width"]
    counts = result["histogram"]["counts"]
    max_len = result["max_len"]
    buckets = max(len(counts), math.ceil((max_len + 1) / bucket))
    span = buckets * bucket
    tallest = max(counts) or 1
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    bottom = pad_t + plot_h

    def x(tokens: float) -> float:
        return pad_l + plot_w * tokens / span

    bars = []
    for i, count in enumerate(counts):
        if not count:
            continue
        h = plot_h * count / tallest
        bars.append(
            {
                "x": round(x(i * bucket), 1),
                "y": round(bottom - h, 1),
                "w": round(max(1.0, x(bucket) - x(0) - 1), 1),
                "h": round(h, 1),
                "low": i * bucket,
                "high": (i + 1) * bucket - 1,
                "count": count,
                "over": i * bucket + bucket - 1 > max_len,
            }
        )
    ticks = [{"x": round(x(t), 1), "label": t} for t in range(0, span + 1, span // 4 or 1)]
    return {
        "width": width,
        "height": height,
        "left": pad_l,
        "right": width - pad_r,
        "top": pad_t,
        "bottom": bottom,
        "bars": bars,
        "ticks": ticks,
        "tallest": tallest,
        "max_len_x": round(x(max_len), 1),
        "max_len": max_len,
    }
