"""The design YAML the editor exports and imports, and ``manage.py pretrain`` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from training.engine.design.spec import Design


@dataclass(frozen=True)
class DesignDocument:
    name: str
    design: Design
    batch_size: int
    sequence_length: int


def read_design_yaml(text: str) -> DesignDocument:
    """The document in ``text``; ValueError says what is wrong with it."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({exc})") from exc
    if not isinstance(document, dict):
        raise ValueError("a design file is a mapping with a 'design' key")
    design = Design.from_dict(document.get("design"))
    numbers = {}
    for key, default in (("batch_size", 8), ("sequence_length", 128)):
        value = document.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a whole number of at least 1")
        numbers[key] = value
    return DesignDocument(str(document.get("name") or "design"), design, **numbers)


def read_design_file(path: Path | str) -> DesignDocument:
    return read_design_yaml(Path(path).read_text(encoding="utf-8"))
