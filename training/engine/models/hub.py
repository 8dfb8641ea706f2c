"""Download a model from the Hugging Face Hub into the model store, with progress.

Only what the lab can load safely is fetched: safetensors weights, JSON configs,
tokenizer files and chat templates. Pickle checkpoints and model code are never
downloaded (trust_remote_code stays off), and a repository without safetensors
weights is refused before a byte of weights moves. Offline (HF_HUB_OFFLINE, or no
route to the Hub) the download fails at once with what to do instead.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from training.engine.models.arch import read_model_facts
from training.engine.models.folders import (
    SAFE_SUFFIXES,
    ModelStoreError,
    check_safe_model_dir,
    folder_bytes,
)

OFFLINE_HINT = (
    "copy the model folder to the server and import it with "
    "`manage.py import_model <folder>` instead"
)
ProgressCallback = Callable[[int, int], None]


class HubError(ModelStoreError):
    """The Hub cannot give us this model (offline, not found, gated, unsafe)."""


def _gated(repo_id: str) -> str:
    return (
        f"{repo_id} is gated: accept its licence on huggingface.co and set HF_TOKEN for the workers"
    )


class Plan(NamedTuple):
    # Every file is fetched at this commit: a branch that moves mid-download must not
    # leave weights from one commit beside a config from another.
    commit: str | None
    files: list[tuple[str, int]]  # (file name, size in bytes)


def plan(repo_id: str, revision: str | None = None) -> Plan:
    """The commit and files to fetch; raises :class:`HubError`."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        raise HubError(f"this lab is offline (HF_HUB_OFFLINE is set): {OFFLINE_HINT}")
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except GatedRepoError as exc:
        raise HubError(_gated(repo_id)) from exc
    except RepositoryNotFoundError as exc:
        raise HubError(f"{repo_id} was not found on the Hugging Face Hub") from exc
    except Exception as exc:  # DNS, refused connection, timeouts, proxies: all "unreachable"
        raise HubError(
            f"cannot reach the Hugging Face Hub ({type(exc).__name__}: {exc}); {OFFLINE_HINT}"
        ) from exc
    files = [
        (s.rfilename, s.size or 0)
        for s in info.siblings or []
        if "/" not in s.rfilename and Path(s.rfilename).suffix.lower() in SAFE_SUFFIXES
    ]
    if not any(name.endswith(".safetensors") for name, _ in files):
        raise HubError(
            f"{repo_id} has no safetensors weights; pickle checkpoints are refused "
            "because loading them can run arbitrary code"
        )
    if "config.json" not in {name for name, _ in files}:
        raise HubError(f"{repo_id} has no config.json: it is not a transformers model")
    return Plan(info.sha or revision, files)


class ProgressPoller(threading.Thread):
    """Reports the bytes under ``folder`` every second while a download fills it."""

    def __init__(self, folder: Path, total: int, on_progress: ProgressCallback) -> None:
        super().__init__(daemon=True, name="hub-progress")
        self.folder, self.total, self.on_progress = folder, total, on_progress
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.on_progress(min(folder_bytes(self.folder), self.total), self.total)


def _fetch(repo_id: str, name: str, revision: str | None, folder: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    try:
        hf_hub_download(repo_id, name, revision=revision, local_dir=folder)
    except GatedRepoError as exc:
        # The Hub shows a gated repository's file list to anyone; only its files are refused.
        raise HubError(_gated(repo_id)) from exc
    except Exception as exc:  # the Hub failing mid-way: 5xx, a dropped connection, a short file
        raise HubError(
            f"downloading {name} from the Hugging Face Hub failed "
            f"({type(exc).__name__}: {first_line(exc)}); nothing was kept, try again later"
        ) from exc


def first_line(exc: Exception) -> str:
    # huggingface_hub appends the server's reply and links on further lines.
    return (str(exc).splitlines() or [""])[0]


def download(
    repo_id: str,
    target: Path,
    on_progress: ProgressCallback,
    revision: str | None = None,
) -> Path:
    """Fetch ``repo_id`` into ``target`` (which must not exist); all or nothing."""
    commit, files = plan(repo_id, revision)
    total = sum(size for _, size in files)
    if target.exists():
        raise HubError(f"{target} already exists")
    tmp = target.parent / f".{target.name}.download-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    on_progress(0, total)
    poller = ProgressPoller(tmp, total, on_progress)
    poller.start()
    try:
        for name, _size in files:
            _fetch(repo_id, name, commit, tmp)
        poller.done.set()
        poller.join()
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        check_safe_model_dir(tmp)
        read_model_facts(tmp)
        os.rename(tmp, target)
    except BaseException:
        poller.done.set()
        poller.join()  # no progress reported after this call has returned
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    on_progress(total, total)
    return target
