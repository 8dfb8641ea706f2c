import shutil

import pytest

from tests.exports.helpers import write_adapter, write_tiny_llama
from tests.factories import make_base_model, make_dataset, make_project, make_run
from training.models import Run


@pytest.fixture(scope="session")
def tiny_model(bundled_model_dir, tmp_path_factory):
    """(tiny base folder, adapter folder) shared by the exports tests."""
    folder = tmp_path_factory.mktemp("tiny-export")
    base = write_tiny_llama(folder / "base", bundled_model_dir)
    return base, write_adapter(base, folder / "adapter", scale=0.5)


@pytest.fixture
def finished_run(user, tiny_model):
    """A completed run of ``user`` on the tiny model, with its adapter saved."""
    base, adapter = tiny_model
    project = make_project(owner=user, name="Export me")
    run = make_run(
        project=project,
        dataset=make_dataset(project),
        base_model=make_base_model(name="tiny", path=str(base)),
        status=Run.Status.COMPLETED,
        config={"quantization": "4bit"},
    )
    shutil.copytree(adapter, run.adapter_dir)
    return run
