"""Checkpoints: everything a run needs to go on exactly where it stopped.

A checkpoint is a folder ``<output_dir>/checkpoints/step-00000040/`` holding what the
training loop writes into it (the LoRA adapter, optimizer, scheduler and RNG states:
see ``Trainer.save_checkpoint``) and ``state.json`` (step, data position, token count,
training time, the settings it was made with). ``complete.json`` is written last,
atomically, and lists every file with its size: a folder without it, or whose files no
longer match it, was cut short (a crash mid-save, a full disk) and is skipped.

This module is the folder format only, without torch, so the web process can list and
delete checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.engine.config import RunConfig

MARKER = "complete.json"
STATE = "state.json"
_NAME = re.compile(r"^step-(\d{8})$")

# Settings that may differ between the run that saved a checkpoint and the one that
# resumes from it: paths move between workers, and operators change limits.
_RESUMABLE_CHANGES = {
    "model_dir",
    "dataset_path",
    "output_dir",
    "checkpoint_every",
    "keep_checkpoints",
    "time_limit_s",
    "log_every",
    "validation_path",
    "eval_every",
}


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    created: float  # unix time the marker was written
    size_bytes: int


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used to resume this run (different settings, unreadable)."""


def root(output_dir: Path | str) -> Path:
    return Path(output_dir) / "checkpoints"


def _read_complete(path: Path) -> Checkpoint | None:
    match = _NAME.match(path.name)
    if not match:
        return None
    try:
        marker = json.loads((path / MARKER).read_text())
        files = marker["files"]
        for name, size in files.items():
            if (path / name).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Checkpoint(
        step=int(match.group(1)),
        path=path,
        created=float(marker.get("created", 0)),
        size_bytes=sum(files.values()),
    )


def list_complete(output_dir: Path | str) -> list[Checkpoint]:
    """Complete checkpoints, oldest first; incomplete folders are left out."""
    folder = root(output_dir)
    if not folder.is_dir():
        return []
    found = (_read_complete(p) for p in folder.iterdir() if p.is_dir())
    return sorted((c for c in found if c is not None), key=lambda c: c.step)


def latest(output_dir: Path | str) -> Checkpoint | None:
    """The newest complete checkpoint, or None."""
    complete = list_complete(output_dir)
    return complete[-1] if complete else None


def write(
    output_dir: Path | str,
    step: int,
    write_files: Callable[[Path], None],
    state: dict[str, Any],
    keep: int,
) -> Checkpoint:
    """Write the checkpoint of ``step``: ``write_files(folder)``, ``state.json``, then the
    marker; then prune to the newest ``keep``."""
    path = root(output_dir) / f"step-{step:08d}"
    if path.exists():  # a leftover from a save that was cut short
        shutil.rmtree(path)
    path.mkdir(parents=True)
    write_files(path)
    (path / STATE).write_text(json.dumps({**state, "step": step}, indent=2))
    files = {}
    for item in sorted(path.iterdir()):
        with open(item, "rb") as fh:
            os.fsync(fh.fileno())  # on disk before the marker says so
        files[item.name] = item.stat().st_size
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"step": step, "created": time.time(), "files": files}))
    os.replace(tmp, path / MARKER)
    checkpoint = _read_complete(path)
    assert checkpoint is not None
    prune(output_dir, keep)
    return checkpoint


def prune(output_dir: Path | str, keep: int) -> None:
    """Keep the newest ``keep`` complete checkpoints; drop older and incomplete ones.

    An incomplete folder newer than every complete one may still be being written by
    this process's caller only if it called us from ``save``, which finished it first;
    so any incomplete folder here is debris.
    """
    complete = list_complete(output_dir)
    keep_paths = {c.path for c in complete[-keep:]} if keep > 0 else set()
    folder = root(output_dir)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_dir() and _NAME.match(path.name) and path not in keep_paths:
            shutil.rmtree(path, ignore_errors=True)


def delete(output_dir: Path | str, step: int) -> bool:
    """Remove the checkpoint of ``step``; False when there is none."""
    path = root(output_dir) / f"step-{step:08d}"
    if not path.is_dir():
        return False
    shutil.rmtree(path)
    return True


def read_state(checkpoint: Checkpoint) -> dict[str, Any]:
    return json.loads((checkpoint.path / STATE).read_text())


def check_compatible(checkpoint: Checkpoint, config: dict[str, Any]) -> None:
    """Refuse to resume with settings that change what the saved state means."""
    # A setting added after the checkpoint was written had its default then.
    defaults = RunConfig("-", "-", "-").to_dict()
    saved = {**defaults, **read_state(checkpoint).get("config", {})}
    config = {**defaults, **config}
    changed = sorted(
        name
        for name in set(saved) | set(config)
        if name not in _RESUMABLE_CHANGES and saved.get(name) != config.get(name)
    )
    if changed:
        raise CheckpointError(
            f"checkpoint {checkpoint.path.name} was made with different settings "
            f"({', '.join(changed)}); start a new run instead"
        )
