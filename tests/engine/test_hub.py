"""Hub downloads against a fake Hub on 127.0.0.1, through the real huggingface_hub client."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.engine.models.hub import HubError, download, plan

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


def test_every_hub_file_comes_from_the_commit_that_was_planned(fake_hub, tiny_hub_model, tmp_path):
    repo = fake_hub.add_folder(REPO, tiny_hub_model)

    download(REPO, tmp_path / "tiny", lambda d, t: None)

    resolved = [path for method, path in fake_hub.requests if "/resolve/" in path]
    assert resolved and all(f"/resolve/{repo.commit}/" in path for path in resolved)


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


def test_a_gated_hub_repo_says_to_accept_the_licence(fake_hub, tiny_hub_model, tmp_path):
    fake_hub.add_folder(REPO, tiny_hub_model, gated=True)
    assert len(plan(REPO).files) == len(FETCHED)  # the file list of a gated repository is public

    with pytest.raises(HubError, match=rf"^{REPO} is gated: accept its licence .* HF_TOKEN"):
        download(REPO, tmp_path / "store" / "tiny", lambda d, t: None)
    assert list((tmp_path / "store").iterdir()) == []


def test_an_unknown_hub_repo_is_not_found(fake_hub, tmp_path):
    with pytest.raises(HubError, match=r"^nobody/nothing was not found on the Hugging Face Hub$"):
        download("nobody/nothing", tmp_path / "tiny", lambda d, t: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["500", "cut"])
def test_a_hub_failing_mid_download_leaves_no_folder_and_no_partial_file(
    fake_hub, tiny_hub_model, tmp_path, mode
):
    fake_hub.add_folder(REPO, tiny_hub_model)
    fake_hub.fail("model.safetensors", mode)
    store = tmp_path / "store"

    with pytest.raises(HubError) as failed:
        download(REPO, store / "tiny", lambda d, t: None)
    assert str(failed.value).startswith(
        "downloading model.safetensors from the Hugging Face Hub failed (HfHubHTTPError: "
        "Server error '500 Internal Server Error' for url "
    )
    assert str(failed.value).endswith("); nothing was kept, try again later")
    assert "config.json" in fake_hub.fetched("GET")  # it failed mid-way, not at the start
    # Cut: the client retried once after the dropped connection and got the 500.
    assert fake_hub.fetched("GET").count("model.safetensors") == (2 if mode == "cut" else 1)
    assert list(store.iterdir()) == []
    assert _files_under(tmp_path / "hf-cache") == []  # huggingface_hub's cache, in this test


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
