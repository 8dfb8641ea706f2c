"""Hub downloads against a fake Hub on 127.0.0.1, through the real huggingface_hub client."""

from __future__ import annotations

import shutil

import pytest

from training.engine.hub import HubError, download

REPO = "tiny-org/tiny-llama"
FETCHED = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
}
NEVER_FETCHED = {"pytorch_model.bin", "modeling_tiny.py", "README.md", "original/params.json"}


def test_it_downloads_a_hub_model_with_only_the_files_the_lab_loads(
    fake_hub, tiny_hub_model, tmp_path
):
    repo = fake_hub.add_folder(REPO, tiny_hub_model)
    assert set(repo.files) >= FETCHED | NEVER_FETCHED  # the repository holds both kinds
    progress: list[tuple[int, int]] = []

    target = download(REPO, tmp_path / "store" / "tiny", lambda d, t: progress.append((d, t)))

    assert {p.name for p in target.iterdir()} == FETCHED  # no .cache bookkeeping either
    for name in FETCHED:
        assert (target / name).read_bytes() == repo.files[name]
    assert set(fake_hub.fetched("GET")) == FETCHED
    assert not NEVER_FETCHED & set(fake_hub.fetched("HEAD"))
    total = sum(len(repo.files[name]) for name in FETCHED)
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["tiny"]  # no temp folder left


def test_a_hub_repo_without_safetensors_is_refused_before_any_weights_move(
    fake_hub, tiny_hub_model, tmp_path
):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_hub_model, pickled)
    (pickled / "model.safetensors").unlink()
    fake_hub.add_folder(REPO, pickled)

    with pytest.raises(HubError, match="has no safetensors weights; pickle checkpoints are"):
        download(REPO, tmp_path / "store" / "tiny", lambda d, t: None)
    assert fake_hub.requests == [("GET", f"/api/models/{REPO}")]  # the file list, nothing else
    assert not (tmp_path / "store").exists()


def test_an_unknown_hub_repo_is_not_found(fake_hub, tmp_path):
    with pytest.raises(HubError, match=r"^nobody/nothing was not found on the Hugging Face Hub$"):
        download("nobody/nothing", tmp_path / "tiny", lambda d, t: None)
    assert list(tmp_path.iterdir()) == []
