"""Plain factory functions: each makes one saved object with sensible defaults."""

import itertools

from accounts.models import User
from projects.models import Project

_seq = itertools.count(1)
PASSWORD = "a-Long-test-passw0rd"


def make_user(email: str | None = None, **extra) -> User:
    return User.objects.create_user(email or f"user{next(_seq)}@example.com", PASSWORD, **extra)


def make_project(owner: User | None = None, name: str | None = None, **extra) -> Project:
    return Project.objects.create(
        owner=owner or make_user(), name=name or f"project {next(_seq)}", **extra
    )


def make_base_model(name: str = "SmolLM2-135M-Instruct", path: str = "/nonexistent", **extra):
    from projects.models import BaseModel

    model, _ = BaseModel.objects.get_or_create(
        name=name,
        defaults={"path": path, "source": BaseModel.Source.BUNDLED, "is_default": True, **extra},
    )
    return model


ALPACA_ROWS = [
    {"instruction": "Say hi", "input": "", "output": "hi"},
    {"instruction": "Add", "input": "2 + 2", "output": "4"},
    {"instruction": "Capital of France?", "output": "Paris"},
]


def make_dataset(project: Project | None = None, rows: list[dict] | None = None, name="data"):
    """A dataset stored through the same path an upload takes."""
    import tempfile
    from pathlib import Path

    from projects.datasets import store_dataset
    from training.engine.data.samples import write_jsonl

    project = project or make_project()
    fd, tmp = tempfile.mkstemp(suffix=".jsonl")
    import os

    os.close(fd)
    write_jsonl(tmp, rows or ALPACA_ROWS)
    return store_dataset(project, Path(tmp), name)


def make_run(project: Project | None = None, dataset=None, base_model=None, **extra):
    from training.forms import CONFIG_FIELDS, _config_defaults
    from training.models import Run

    project = project or make_project()
    dataset = dataset or make_dataset(project)
    config = {k: v for k, v in _config_defaults().items() if k in CONFIG_FIELDS}
    config.update(max_steps=2, max_seq_len=64, batch_size=2)
    return Run.objects.create(
        owner=project.owner,
        project=project,
        dataset=dataset,
        base_model=base_model or make_base_model(),
        name=extra.pop("name", "run"),
        config={**config, **extra.pop("config", {})},
        **extra,
    )
