"""Datasets imported from the Hugging Face Hub: data files only, all or nothing.

The imports run against a fake Hub on 127.0.0.1 (tests/fakehub.py) through the real
huggingface_hub client; the job runs here as a worker runs it.
"""

import gzip
import io
import json
from pathlib import Path

import dramatiq
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.urls import reverse
from django.utils.html import escape

from exports import services as export_services
from projects.jobs.hub_import import run_import
from projects.models import Dataset, DatasetImport
from tests import websockets
from tests.factories import make_project, make_user
from training.engine.data import hub
from training.engine.data.hub import DataFile, DatasetPlan, HubDatasetError

pytestmark = pytest.mark.django_db
ALPACA = [
    {"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{2 * i + 1}"}
    for i in range(30)
]


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


CARD = {
    "configs": [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*.parquet"},
                {"split": "test", "path": "data/test-*.parquet"},
            ],
        },
        {"config_name": "small", "data_files": "small/*.jsonl"},
    ]
}


def alpaca_repo(fake_hub, **kwargs):
    return fake_hub.add_dataset(
        "tatsu-lab/alpaca-mini",
        {
            "README.md": "---\nconfigs: ...\n---\n# Alpaca mini\n",
            "data/train-00000-of-00002.parquet": parquet_bytes(ALPACA[:20]),
            "data/train-00001-of-00002.parquet": parquet_bytes(ALPACA[20:25]),
            "data/test-00000-of-00001.parquet": parquet_bytes(ALPACA[25:]),
            "small/first.jsonl": jsonl(ALPACA[:3]),
            "alpaca_mini.py": "raise SystemExit('never run')\n",
        },
        card_data=CARD,
        **kwargs,
    )


def start(client, project, django_capture_on_commit_callbacks, **form) -> DatasetImport:
    broker = dramatiq.get_broker()
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("projects:hub_import", args=[project.pk]),
            {"repo_id": "tatsu-lab/alpaca-mini", "split": "train", **form},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert broker.queues["default"].qsize() == 1  # sent to a worker, not run in the request
    return DatasetImport.objects.get()


def leftovers(settings) -> list:
    return sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "tmp").iterdir())


# -- choosing files (pure) -------------------------------------------------------------


def names(*paths: str) -> list[tuple[str, int]]:
    return [(p, 10) for p in paths]


def test_the_readme_configs_name_the_files_of_each_config_and_split():
    listing = names(
        "data/train-0.parquet", "data/train-1.parquet", "data/test-0.parquet", "small/a.jsonl"
    )
    config, files = hub.choose("r", listing, CARD, "", "train")
    assert config == "default"
    assert [f.name for f in files] == ["data/train-0.parquet", "data/train-1.parquet"]
    assert [f.name for f in hub.choose("r", listing, CARD, "", "test")[1]] == [
        "data/test-0.parquet"
    ]
    assert [f.name for f in hub.choose("r", listing, CARD, "small", "train")[1]] == [
        "small/a.jsonl"
    ]
    with pytest.raises(HubDatasetError, match="no config 'big'; its configs: default, small"):
        hub.choose("r", listing, CARD, "big", "train")
    with pytest.raises(HubDatasetError, match="has no split 'validation'; its splits: train, test"):
        hub.choose("r", listing, CARD, "", "validation")


def test_without_configs_split_names_in_paths_choose_the_files():
    listing = names("train.jsonl", "dev.jsonl", "test/part-0.jsonl", "README.md", ".gitattributes")
    assert [f.name for f in hub.choose("r", listing, None, "", "train")[1]] == ["train.jsonl"]
    assert [f.name for f in hub.choose("r", listing, None, "", "validation")[1]] == ["dev.jsonl"]
    assert [f.name for f in hub.choose("r", listing, None, "", "test")[1]] == ["test/part-0.jsonl"]
    # No name says otherwise: every data file is "train".
    plain = names("questions.csv", "more/questions-2.csv")
    assert len(hub.choose("r", plain, None, "", "train")[1]) == 2
    with pytest.raises(HubDatasetError, match="name no splits"):
        hub.choose("r", plain, None, "", "test")
    # A config without card metadata is a folder.
    folders = names("en/train.jsonl", "ko/train.jsonl")
    assert [f.name for f in hub.choose("r", folders, None, "ko", "train")[1]] == ["ko/train.jsonl"]
    with pytest.raises(HubDatasetError, match="no folder for the config 'fr'"):
        hub.choose("r", folders, None, "fr", "train")


def test_scripts_are_refused_and_formats_are_not_mixed():
    with pytest.raises(HubDatasetError, match=r"loading script \(squad\.py\).*never runs"):
        hub.choose("squad", names("squad.py", "README.md"), None, "", "train")
    with pytest.raises(HubDatasetError, match="no data files the lab reads"):
        hub.choose("r", names("README.md", "images/cat.png"), None, "", "train")
    with pytest.raises(HubDatasetError, match=r"several formats \(csv, jsonl\)"):
        hub.choose("r", names("train-a.jsonl", "train-b.csv"), None, "", "train")
    assert hub.data_file("train.jsonl.gz", 5) == DataFile("train.jsonl.gz", 5, "jsonl", True)
    assert hub.data_file("train.parquet.gz", 5) is None


# -- one file the lab reads ------------------------------------------------------------


def combine(tmp_path, files: dict[str, bytes]):
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    items = tuple(hub.data_file(name, len(data)) for name, data in files.items())
    plan = DatasetPlan("r", "abc", "default", "train", items)
    out, fmt = hub.combine(plan, paths, tmp_path)
    return out.read_text(), fmt


def test_parquet_and_several_files_become_json_lines(tmp_path):
    text, fmt = combine(
        tmp_path,
        {"a.parquet": parquet_bytes(ALPACA[:2]), "b.parquet": parquet_bytes(ALPACA[2:3])},
    )
    assert fmt == "jsonl" and [json.loads(line) for line in text.splitlines()] == ALPACA[:3]

    csvs = {"x/a.csv": b"prompt,completion\nhi,there\n", "x/b.csv": b"prompt,completion\nyo,ho"}
    text, fmt = combine(tmp_path, csvs)
    assert fmt == "jsonl"
    assert [json.loads(line) for line in text.splitlines()] == [
        {"prompt": "hi", "completion": "there"},
        {"prompt": "yo", "completion": "ho"},
    ]


def test_json_files_are_read_as_what_they_hold(tmp_path):
    wrapped = json.dumps({"version": "1", "data": ALPACA[:2]}).encode()
    text, fmt = combine(tmp_path, {"w/train.json": wrapped})
    assert fmt == "jsonl" and [json.loads(line) for line in text.splitlines()] == ALPACA[:2]

    lines_named_json = jsonl(ALPACA[:2]).encode()
    text, fmt = combine(tmp_path, {"l/train.json": lines_named_json})
    assert (fmt, text) == ("jsonl", lines_named_json.decode())

    array = json.dumps(ALPACA[:2]).encode()
    text, fmt = combine(tmp_path, {"a/train.json": array})
    assert (fmt, json.loads(text)) == ("json", ALPACA[:2])

    text, fmt = combine(tmp_path, {"g/train.jsonl.gz": gzip.compress(lines_named_json)})
    assert (fmt, text) == ("jsonl", lines_named_json.decode())


# -- the import, through the fake Hub ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_import_fetches_only_the_chosen_data_files_and_stores_a_checked_dataset(
    owner_client, user, fake_hub, settings, django_capture_on_commit_callbacks
):
    repo = alpaca_repo(fake_hub)
    project = make_project(owner=user)
    item = start(owner_client, project, django_capture_on_commit_callbacks, name="Alpaca")

    run_import(item.pk)
    item.refresh_from_db()
    assert item.status == "done", item.error
    dataset = item.result
    assert (dataset.project, dataset.owner, dataset.name) == (project, user, "Alpaca")
    assert dataset.row_count == item.rows_checked == 25  # both train shards, not the test one
    assert (dataset.file_format, dataset.shape) == ("jsonl", "alpaca")
    assert item.commit == repo.commit and repo.commit[:12] in dataset.description
    assert "tatsu-lab/alpaca-mini" in dataset.description
    assert sorted(fake_hub.fetched()) == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    assert (
        item.bytes_done == item.bytes_total == sum(len(repo.files[n]) for n in fake_hub.fetched())
    )
    rows = [json.loads(line) for line in Path(dataset.file.path).read_text().splitlines()]
    assert rows == ALPACA[:25]
    assert leftovers(settings) == []  # no downloaded shards, no combined file

    page = owner_client.get(reverse("projects:hub_import", args=[project.pk])).content.decode()
    assert dataset.get_absolute_url() in page and "25 rows checked" in page


def test_the_form_refuses_what_is_not_a_repository_id(owner_client, user):
    project = make_project(owner=user)
    url = reverse("projects:hub_import", args=[project.pk])
    for bad in ("", "a b/c", "../etc/passwd", "x/y/z"):
        response = owner_client.post(url, {"repo_id": bad, "split": "train"})
        assert response.status_code == 400, bad
    page = owner_client.post(url, {"repo_id": "a b/c", "split": "train"}).content.decode()
    assert "Not a Hub repository id" in page
    url_form = owner_client.post(
        url, {"repo_id": "https://huggingface.co/datasets/tatsu-lab/alpaca", "split": "tr ain"}
    )
    assert url_form.status_code == 400 and "Letters, digits" in url_form.content.decode()
    assert not DatasetImport.objects.exists()
    # A link is taken for the id it names.
    owner_client.post(url, {"repo_id": "https://huggingface.co/datasets/tatsu-lab/alpaca"})
    assert DatasetImport.objects.get().repo_id == "tatsu-lab/alpaca"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["500", "cut"])
def test_a_hub_failing_mid_import_leaves_nothing_and_says_so(
    owner_client, user, fake_hub, settings, django_capture_on_commit_callbacks, mode
):
    alpaca_repo(fake_hub)
    fake_hub.fail("data/train-00001-of-00002.parquet", mode)
    project = make_project(owner=user)
    item = start(owner_client, project, django_capture_on_commit_callbacks)

    run_import(item.pk)
    item.refresh_from_db()
    assert item.status == "failed" and item.finished is not None
    assert item.error.startswith("downloading data/train-00001-of-00002.parquet from the")
    assert not Dataset.objects.exists()
    assert leftovers(settings) == []
    fragment = owner_client.get(
        reverse("projects:hub_import_status", args=[project.pk, item.pk])
    ).content.decode()
    assert escape(item.error) in fragment


@pytest.mark.django_db(transaction=True)
def test_unknown_private_gated_and_script_datasets_fail_with_what_to_do(
    owner_client, user, fake_hub, settings, django_capture_on_commit_callbacks
):
    project = make_project(owner=user)
    fake_hub.add_dataset("someone/private", {"train.jsonl": jsonl(ALPACA)}, private=True)
    fake_hub.add_dataset("someone/gated", {"train.jsonl": jsonl(ALPACA)}, gated=True)
    fake_hub.add_dataset("someone/scripted", {"scripted.py": "x = 1\n", "README.md": "# hi"})
    expected = {
        "nobody/nothing": "the dataset nobody/nothing was not found on the Hub",
        "someone/private": "needs your saved Hugging Face token",
        "someone/gated": "someone/gated is gated: accept its terms on huggingface.co",
        "someone/scripted": "built by a loading script (scripted.py)",
    }
    for repo_id, message in expected.items():
        DatasetImport.objects.all().delete()
        item = start(owner_client, project, django_capture_on_commit_callbacks, repo_id=repo_id)
        run_import(item.pk)
        item.refresh_from_db()
        assert item.status == "failed" and message in item.error, (repo_id, item.error)
    assert fake_hub.fetched() == []  # a refusal is decided from the file list alone
    assert not Dataset.objects.exists() and leftovers(settings) == []

    # With the owner's own saved token, the gated and the private ones import.
    export_services.save_hub_token(user, "hf_reader")
    fake_hub.add_reader("hf_reader", "someone/gated", "someone/private")
    for repo_id in ("someone/gated", "someone/private"):
        DatasetImport.objects.all().delete()
        item = start(owner_client, project, django_capture_on_commit_callbacks, repo_id=repo_id)
        run_import(item.pk)
        item.refresh_from_db()
        assert item.status == "done", item.error
        assert item.result.row_count == len(ALPACA)


@pytest.mark.django_db(transaction=True)
def test_offline_bad_rows_and_the_quota_fail_before_anything_is_stored(
    owner_client, user, fake_hub, settings, django_capture_on_commit_callbacks, monkeypatch
):
    project = make_project(owner=user)
    broken = jsonl(ALPACA[:3]) + '{"instruction": "no output"}\n'
    fake_hub.add_dataset("someone/broken", {"train.jsonl": broken})
    item = start(
        owner_client, project, django_capture_on_commit_callbacks, repo_id="someone/broken"
    )
    run_import(item.pk)
    item.refresh_from_db()
    assert item.status == "failed" and "line 4" in item.error, item.error

    alpaca_repo(fake_hub)
    user.storage_quota_mb = 0
    user.save()
    DatasetImport.objects.all().delete()
    item = start(owner_client, project, django_capture_on_commit_callbacks)
    fetched_before = len(fake_hub.fetched())
    run_import(item.pk)
    item.refresh_from_db()
    assert item.status == "failed" and "storage quota" in item.error, item.error
    assert len(fake_hub.fetched()) == fetched_before  # refused before a byte moved

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    DatasetImport.objects.all().delete()
    item = start(owner_client, project, django_capture_on_commit_callbacks)
    run_import(item.pk)
    item.refresh_from_db()
    assert item.status == "failed" and item.error.startswith("this lab is offline")
    assert not Dataset.objects.exists() and leftovers(settings) == []


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_import_stores_nothing(
    owner_client, user, fake_hub, settings, django_capture_on_commit_callbacks
):
    from django.db import connection

    alpaca_repo(fake_hub)
    project = make_project(owner=user)
    item = start(owner_client, project, django_capture_on_commit_callbacks)

    def cancel_meanwhile() -> None:  # the owner presses Cancel while the files arrive
        DatasetImport.objects.get(pk=item.pk).cancel()
        connection.close()  # the server thread's own connection

    fake_hub.on_fetch("data/train-00001-of-00002.parquet", cancel_meanwhile)
    run_import(item.pk)
    item.refresh_from_db()
    assert item.status == "cancelled"
    assert not Dataset.objects.exists() and leftovers(settings) == []


@pytest.mark.django_db(transaction=True)  # the websocket's consumer reads from its own thread
def test_another_user_gets_404_for_every_import_page_fragment_and_websocket(
    owner_client, client, user
):
    project = make_project(owner=user)
    item = DatasetImport.objects.create(
        owner=user, project=project, repo_id="a/b", name="b", status="running"
    )
    stranger = make_user("stranger@example.com")
    client.force_login(stranger)
    urls = [
        reverse("projects:hub_import", args=[project.pk]),
        reverse("projects:hub_import_status", args=[project.pk, item.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
        assert owner_client.get(url).status_code == 200, url
    assert client.post(urls[0], {"repo_id": "a/b", "split": "train"}).status_code == 404
    cancel = reverse("projects:hub_import_cancel", args=[project.pk, item.pk])
    assert client.post(cancel).status_code == 404
    item.refresh_from_db()
    assert item.status == "running"
    # The stranger's own project does not open someone else's import either.
    theirs = make_project(owner=stranger)
    other = reverse("projects:hub_import_status", args=[theirs.pk, item.pk])
    assert client.get(other).status_code == 404
    assert DatasetImport.objects.count() == 1

    connected, code, _ = websockets.connect(f"/ws/dataset-imports/{item.pk}/", stranger)
    assert not connected and code == 4404
    connected, _, state = websockets.connect(f"/ws/dataset-imports/{item.pk}/", user)
    assert connected and f'id="dataset-import-{item.pk}"' in state
    assert owner_client.post(cancel).status_code == 200
    item.refresh_from_db()
    assert item.status == "cancelled"
