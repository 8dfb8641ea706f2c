"""Import a dataset from the Hugging Face Hub: its data files only, never a loading script.

:func:`plan` reads the repository's file list (and the ``configs`` its README declares,
which name the files of each config and split) and picks the files of one config and
split; :func:`fetch` downloads them at the listed commit into a folder, with byte
progress; :func:`combine` turns them into one file of a format the lab reads
(Parquet and several files become JSON Lines). Nothing here knows Django; the caller
validates the combined file like any upload.

Files are chosen the way the ``datasets`` library chooses them for a repository without
a script: the README's ``configs`` first; otherwise a folder named after the config,
and split names in file or folder names (``train``, ``validation``/``dev``, ``test``),
all files being ``train`` when no name says otherwise.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from training.engine.models.hub import ProgressPoller, first_line

# File endings of data files, and the format each is read as (".gz" may follow).
DATA_SUFFIXES = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".txt": "txt",
}
SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
OFFLINE_HINT = "download the files yourself and upload them on the project page instead"
ProgressCallback = Callable[[int, int], None]


class HubDatasetError(Exception):
    """The Hub cannot give us this dataset (offline, not found, gated, script-only, …)."""


@dataclass(frozen=True)
class DataFile:
    name: str  # path inside the repository
    size: int
    fmt: str  # parquet, jsonl, json, csv or txt
    compressed: bool


@dataclass(frozen=True)
class DatasetPlan:
    repo_id: str
    commit: str | None
    config: str
    split: str
    files: tuple[DataFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fmt(self) -> str:
        return self.files[0].fmt


def data_file(name: str, size: int) -> DataFile | None:
    """The data file ``name`` is, or None for anything else (README, scripts, images…)."""
    path = PurePosixPath(name.lower())
    compressed = path.suffix == ".gz"
    suffix = PurePosixPath(path.stem).suffix if compressed else path.suffix
    fmt = DATA_SUFFIXES.get(suffix)
    if fmt is None or (compressed and fmt == "parquet"):
        return None
    if any(part.startswith(".") for part in path.parts):
        return None  # .gitattributes, hidden folders
    return DataFile(name, size, fmt, compressed)


# -- choosing files ------------------------------------------------------------------


def _card_configs(card_data: Any) -> list[dict]:
    configs = card_data.get("configs") if card_data is not None else None
    return [c for c in configs or [] if isinstance(c, dict) and c.get("config_name")]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value or [] if isinstance(v, str)]


def _from_card(configs: list[dict], config: str, split: str, files: list[DataFile]):
    names = [c["config_name"] for c in configs]
    if config:
        chosen = next((c for c in configs if c["config_name"] == config), None)
        if chosen is None:
            raise HubDatasetError(
                f"this dataset has no config {config!r}; its configs: {', '.join(names)}"
            )
    else:
        chosen = next((c for c in configs if c.get("default")), None) or next(
            (c for c in configs if c["config_name"] == "default"), None
        )
        if chosen is None:
            if len(configs) > 1:
                raise HubDatasetError(
                    f"this dataset has several configs; choose one of: {', '.join(names)}"
                )
            chosen = configs[0]
    data_files = chosen.get("data_files")
    if isinstance(data_files, (str, list)) and all(isinstance(d, str) for d in _listed(data_files)):
        by_split = {"train": _as_list(data_files)}
    else:
        by_split = {}
        for entry in _listed(data_files):
            if isinstance(entry, dict) and entry.get("split"):
                by_split[str(entry["split"])] = _as_list(entry.get("path"))
    if split not in by_split:
        raise HubDatasetError(
            f"config {chosen['config_name']!r} has no split {split!r}; "
            f"its splits: {', '.join(by_split) or 'none'}"
        )
    patterns = by_split[split]
    picked = [f for f in files if any(fnmatch.fnmatchcase(f.name, p) for p in patterns)]
    return chosen["config_name"], picked


def _listed(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def split_of(name: str) -> str | None:
    """The split a file's path names (``data/train-00000.parquet``, ``dev/x.jsonl``)."""
    path = PurePosixPath(name.lower())
    words = [path.name.split(".")[0], *path.parent.parts]
    for split, aliases in SPLIT_NAMES.items():
        for word in words:
            for alias in aliases:
                if word == alias or word.startswith((alias + "-", alias + "_")):
                    return split
    return None


def _by_convention(config: str, split: str, files: list[DataFile]):
    if config:
        files = [f for f in files if config in PurePosixPath(f.name).parent.parts]
        if not files:
            raise HubDatasetError(
                f"this dataset has no folder for the config {config!r} (and its README "
                "declares no configs)"
            )
    splits = {f.name: split_of(f.name) for f in files}
    if not any(splits.values()):
        if split != "train":
            raise HubDatasetError(
                f"this dataset's files name no splits: all of them are 'train', not {split!r}"
            )
        return config or "default", files
    picked = [f for f in files if splits[f.name] == split]
    if not picked:
        found = sorted({s for s in splits.values() if s})
        raise HubDatasetError(
            f"this dataset has no split {split!r}; its splits: {', '.join(found)}"
        )
    return config or "default", picked


def choose(
    repo_id: str, names: Iterable[tuple[str, int]], card_data: Any, config: str, split: str
) -> tuple[str, list[DataFile]]:
    """The config and the data files of ``split``; raises HubDatasetError."""
    listing = list(names)
    files = [f for name, size in listing if (f := data_file(name, size)) is not None]
    scripts = [name for name, _ in listing if name.endswith(".py") and "/" not in name]
    if not files:
        if scripts:
            raise HubDatasetError(
                f"{repo_id} is built by a loading script ({scripts[0]}), which the lab never "
                "runs (it is code from the Internet); look for a version of it with data "
                "files (Parquet, JSON Lines, JSON, CSV or text)"
            )
        raise HubDatasetError(
            f"{repo_id} has no data files the lab reads (Parquet, JSON Lines, JSON, CSV or text)"
        )
    configs = _card_configs(card_data)
    if configs:
        config, picked = _from_card(configs, config, split, files)
    else:
        config, picked = _by_convention(config, split, files)
    if not picked:
        raise HubDatasetError(
            f"no data files of {repo_id} match config {config!r}, split {split!r}"
        )
    formats = sorted({f.fmt for f in picked})
    if len(formats) > 1:
        raise HubDatasetError(
            f"the files of split {split!r} come in several formats ({', '.join(formats)}); "
            "choose a config that holds one"
        )
    return config, sorted(picked, key=lambda f: f.name)


# -- talking to the Hub --------------------------------------------------------------


def _api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(token=token or False)


def plan(
    repo_id: str,
    *,
    config: str = "",
    split: str = "train",
    revision: str | None = None,
    token: str | None = None,
) -> DatasetPlan:
    """What to fetch for one config and split of ``repo_id``; raises HubDatasetError."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if constants.HF_HUB_OFFLINE:
        raise HubDatasetError(f"this lab is offline (HF_HUB_OFFLINE is set): {OFFLINE_HINT}")
    try:
        info = _api(token).dataset_info(repo_id, revision=revision or None, files_metadata=True)
    except HFValidationError as exc:
        raise HubDatasetError(f"{repo_id!r} is not a Hub repository id ({exc})") from exc
    except GatedRepoError as exc:
        raise HubDatasetError(_gated(repo_id, token)) from exc
    except RevisionNotFoundError as exc:
        raise HubDatasetError(f"{repo_id} has no revision {revision!r}") from exc
    except RepositoryNotFoundError as exc:
        hint = "" if token else " (a private dataset needs your saved Hugging Face token)"
        raise HubDatasetError(f"the dataset {repo_id} was not found on the Hub{hint}") from exc
    except Exception as exc:  # DNS, refused connection, timeouts, proxies: all "unreachable"
        raise HubDatasetError(
            f"cannot reach the Hugging Face Hub ({type(exc).__name__}: {first_line(exc)}); "
            f"{OFFLINE_HINT}"
        ) from exc
    siblings = [(s.rfilename, s.size or 0) for s in info.siblings or []]
    config, files = choose(repo_id, siblings, info.card_data, config, split)
    return DatasetPlan(repo_id, info.sha or revision, config, split, tuple(files))


def _gated(repo_id: str, token: str | None) -> str:
    if token:
        return (
            f"{repo_id} is gated and your Hub token may not read it: accept its terms on "
            "huggingface.co with the account the token belongs to"
        )
    return (
        f"{repo_id} is gated: accept its terms on huggingface.co, then save your Hub token "
        "(Hugging Face token page) and import again"
    )


def fetch(
    plan: DatasetPlan,
    folder: Path,
    on_progress: ProgressCallback,
    token: str | None = None,
) -> list[Path]:
    """Download the plan's files at its commit into ``folder`` (which must not exist);
    all or nothing: on any failure the folder is removed."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    total = plan.total_bytes
    folder.mkdir(parents=True)
    on_progress(0, total)
    poller = ProgressPoller(folder, total, on_progress)
    poller.start()
    try:
        paths = []
        for item in plan.files:
            try:
                local = hf_hub_download(
                    plan.repo_id,
                    item.name,
                    repo_type="dataset",
                    revision=plan.commit,
                    local_dir=folder,
                    token=token or False,
                )
            except GatedRepoError as exc:
                raise HubDatasetError(_gated(plan.repo_id, token)) from exc
            except Exception as exc:  # 5xx, a dropped connection, a short file
                raise HubDatasetError(
                    f"downloading {item.name} from the Hugging Face Hub failed "
                    f"({type(exc).__name__}: {first_line(exc)}); nothing was kept, try again"
                ) from exc
            paths.append(Path(local))
        poller.done.set()
        poller.join()
    except BaseException:
        poller.done.set()
        poller.join()  # no progress reported after this call has returned
        shutil.rmtree(folder, ignore_errors=True)
        raise
    on_progress(total, total)
    return paths


# -- one file the lab reads ----------------------------------------------------------


def _open(path: Path, compressed: bool) -> BinaryIO:
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)  # dates, decimals: as the Hub's viewer shows them


def _first_char(path: Path, compressed: bool) -> bytes:
    with _open(path, compressed) as fh:
        while chunk := fh.read(4096):
            stripped = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")
            if stripped:
                return stripped[:1]
    return b""


def _rows(path: Path, item: DataFile) -> Iterator[Any]:
    """Rows of one file, for files that must be rewritten as JSON Lines."""
    if item.fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    elif item.fmt == "csv":
        with _open(path, item.compressed) as fh:
            yield from csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""))
    elif item.fmt == "json":
        with _open(path, item.compressed) as fh:
            data = json.load(fh)
        # The Hub's JSON files are often {"data": [...]} or {"version": …, "data": [...]}.
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if len(lists) == 1 else [data]
        yield from data
    else:
        raise AssertionError(item.fmt)


def _layout(items: list[tuple[DataFile, Path]]) -> str:
    """How the files are really written: JSON files whose rows start with ``{`` are
    JSON Lines under a ``.json`` name, as they often are on the Hub, unless the file is
    one JSON value (an array, or an object holding the rows)."""
    fmt = items[0][0].fmt
    if fmt != "json":
        return fmt
    if len(items) == 1 and _one_value(*items[0]):
        return "json"
    if all(_first_char(path, item.compressed) == b"{" for item, path in items):
        return "jsonl"
    return "json"


def combine(plan: DatasetPlan, paths: list[Path], target_dir: Path) -> tuple[Path, str]:
    """One file in a lab format holding every row of ``paths``, and that format.

    A single JSON Lines, CSV or text file or JSON array is kept as it is (decompressed);
    anything else is rewritten as JSON Lines (text files are joined as text).
    """
    items = list(zip(plan.files, paths, strict=True))
    fmt = _layout(items)
    target = target_dir / f"hub-{uuid.uuid4().hex}"
    item, path = items[0]
    as_is = fmt in ("jsonl", "csv", "txt") or _first_char(path, item.compressed) == b"["
    if len(items) == 1 and as_is:
        out = target.with_suffix(f".{fmt}")
        with _open(path, item.compressed) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 2**20)
        return out, fmt
    joined = fmt in ("jsonl", "txt")
    out = target.with_suffix(".txt" if fmt == "txt" else ".jsonl")
    with open(out, "wb") as dst:
        for item, path in items:
            if joined:
                _append_text(dst, path, item.compressed)
                continue
            for row in _rows(path, item):
                line = json.dumps(row, ensure_ascii=False, default=_json_value)
                dst.write(line.encode("utf-8") + b"\n")
    return out, "txt" if fmt == "txt" else "jsonl"


def _append_text(dst: BinaryIO, path: Path, compressed: bool) -> None:
    with _open(path, compressed) as src:
        last = b"\n"
        while chunk := src.read(2**20):
            dst.write(chunk)
            last = chunk[-1:]
        if last != b"\n":
            dst.write(b"\n")


def _one_value(item: DataFile, path: Path) -> bool:
    """Whether a JSON file is one JSON value (not JSON Lines)."""
    try:
        with _open(path, item.compressed) as fh:
            json.load(fh)
    except ValueError:
        return False
    return True
