import json

import pytest
from django.core.management import CommandError, call_command

from projects.models import BaseModel
from tests.training.conftest import SMOLLM2_135M

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings, tmp_path):
    settings.MODEL_STORE_DIR = tmp_path / "store"
    return settings.MODEL_STORE_DIR


def model_folder(path, **extra_files):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(SMOLLM2_135M))
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "tokenizer.json").write_text("{}")
    for name, content in extra_files.items():
        (path / name).write_bytes(content)
    return path


def test_it_imports_a_safetensors_folder_into_the_store(store, tmp_path):
    folder = model_folder(tmp_path / "my-model", **{"modeling_custom.py": b"print('no')"})
    call_command("import_model", str(folder), "--licence", "mit")
    model = BaseModel.objects.get(name="my-model")
    assert model.source == "local" and model.licence == "mit"
    assert model.parameters == 134_515_008
    copied = {p.name for p in (store / "my-model").iterdir()}
    assert copied == {"config.json", "model.safetensors", "tokenizer.json"}  # never the code


def test_it_refuses_pickle_weights_and_leaves_nothing(store, tmp_path):
    folder = model_folder(tmp_path / "risky", **{"pytorch_model.bin": b"pickle"})
    with pytest.raises(CommandError, match="pickle"):
        call_command("import_model", str(folder))
    assert not BaseModel.objects.exists()
    assert not store.exists() or not any(store.iterdir())


def test_it_refuses_a_folder_without_safetensors(store, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SMOLLM2_135M))
    with pytest.raises(CommandError, match="safetensors"):
        call_command("import_model", str(folder))


def test_it_refuses_a_name_already_in_the_store(store, tmp_path):
    call_command("import_model", str(model_folder(tmp_path / "a")), "--name", "same")
    with pytest.raises(CommandError, match="already in the store"):
        call_command("import_model", str(model_folder(tmp_path / "b")), "--name", "same")
    assert BaseModel.objects.count() == 1
