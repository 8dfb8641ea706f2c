import json
import re
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.actors import compute_dataset_stats
from projects.events import render_stats
from projects.models import Dataset, DatasetStats
from projects.services import request_stats
from slmlab.charts import Frame, histogram_chart
from tests.factories import make_base_model, make_dataset, make_project

pytestmark = pytest.mark.django_db

# Known content: rows 0 and 3 are identical, row 4 repeats row 1; "input" is empty in
# four rows; row 2 is long.
ROWS = [
    {"instruction": "Say hi", "input": "", "output": "hi"},
    {"instruction": "Add", "input": "2 + 2", "output": "4"},
    {"instruction": "Write a long story. " * 20, "input": "", "output": "Once upon a time. " * 30},
    {"instruction": "Say hi", "input": "", "output": "hi"},
    {"instruction": "Add", "input": "2 + 2", "output": "4"},
    {"instruction": "Capital of France?", "input": "", "output": "Paris"},
]
MAX_LEN = 64


def queued(broker) -> list[dict]:
    queue = broker.queues.get("default")
    messages = []
    while queue is not None and not queue.empty():
        messages.append(json.loads(queue.get_nowait()))
    return [m for m in messages if m["actor_name"] == "compute_dataset_stats"]


@pytest.fixture
def real_model(bundled_model_dir):
    return make_base_model(path=str(bundled_model_dir))


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Bot")


def expected_lengths(model_dir) -> list[int]:
    from transformers import AutoTokenizer

    from tests.engine.helpers import tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [len(tokenize_example(tokenizer, r, sys.maxsize)["input_ids"]) for r in ROWS]


def test_an_upload_queues_statistics_which_a_worker_computes_and_the_page_shows(
    owner_client, project, real_model, broker, django_capture_on_commit_callbacks
):
    body = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("projects:dataset_upload", args=[project.pk]),
            {"file": SimpleUploadedFile("known.jsonl", body), "name": ""},
        )
    [message] = queued(broker)
    stats = DatasetStats.objects.get(pk=message["args"][0])
    assert (stats.status, stats.max_len, stats.base_model) == ("queued", 512, real_model)

    # Another max length on demand, then the worker runs the messages.
    url = reverse("projects:dataset_stats_compute", args=[project.pk, stats.dataset_id])
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url, {"base_model": real_model.pk, "max_len": MAX_LEN})
    assert response.status_code == 302
    for each in [message, *queued(broker)]:
        compute_dataset_stats(*each["args"])

    short = DatasetStats.objects.get(max_len=MAX_LEN)
    lengths = expected_lengths(real_model.path)
    assert short.status == "done"
    result = short.result
    assert result["rows"] == 6
    assert result["duplicates"] == 2
    assert result["empty_fields"] == {"instruction": 0, "input": 4, "output": 0}
    assert result["truncated"] == sum(n > MAX_LEN for n in lengths) == 1
    assert result["lengths"]["max"] == max(lengths)
    assert DatasetStats.objects.get(max_len=512).result["truncated"] == 0

    page = owner_client.get(response["Location"]).content.decode()
    assert 'data-testid="stat-rows">6<' in page
    assert 'data-testid="stat-duplicates">2<' in page
    assert 'data-testid="stat-truncated">16.7%<' in page
    assert "<td>input</td><td>4</td>" in page
    assert 'data-testid="histogram"' in page
    assert f"max length {MAX_LEN}" in page
    assert page.count('class="bar over"') == 1  # the long row, past the line
    assert "hx-trigger" not in page  # final: no more polling
    summary = owner_client.get(short.dataset.get_absolute_url()).content.decode()
    assert "1 rows longer than 64 tokens; 2 exact duplicates." in summary


def test_the_page_follows_the_worker_over_the_datasets_websocket(owner_client, project, real_model):
    dataset = make_dataset(project, ROWS)
    stats = request_stats(dataset, real_model, MAX_LEN)
    url = reverse("projects:dataset_stats", args=[project.pk, dataset.pk])
    page = owner_client.get(url).content.decode()
    assert f'ws-connect="/ws/datasets/{dataset.pk}/"' in page
    assert f'id="stats-panel-{stats.pk}"' in page and "every 2s" not in page
    DatasetStats.objects.filter(pk=stats.pk).update(status="running", rows_done=3000)

    pushed = render_stats(Dataset.objects.get(pk=dataset.pk))  # what the worker pushes

    assert f'<div id="stats-panel-{stats.pk}"' in pushed and "3,000" in pushed
    assert 'id="stats-summary"' in pushed  # the dataset page's summary too
    assert "<html" not in pushed


def test_a_failure_is_shown_and_asking_again_requeues_it(
    owner_client, project, broker, django_capture_on_commit_callbacks
):
    missing = make_base_model(path="/nonexistent/model")
    dataset = make_dataset(project, ROWS)
    with django_capture_on_commit_callbacks(execute=True):
        stats = request_stats(dataset, missing, MAX_LEN)
    [message] = queued(broker)
    compute_dataset_stats(*message["args"])
    stats.refresh_from_db()
    assert stats.status == "failed"
    assert "/nonexistent/model" in stats.error
    url = reverse("projects:dataset_stats", args=[project.pk, dataset.pk])
    assert "Computing the statistics failed" in owner_client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert request_stats(dataset, missing, MAX_LEN).status == "queued"
    assert len(queued(broker)) == 1


def test_a_second_delivery_computes_nothing(project, real_model):
    dataset = make_dataset(project, ROWS)
    stats = request_stats(dataset, real_model, MAX_LEN)
    compute_dataset_stats(stats.pk)
    DatasetStats.objects.filter(pk=stats.pk).update(result={"kept": True})
    compute_dataset_stats(stats.pk)
    stats.refresh_from_db()
    assert stats.result == {"kept": True}


def test_a_bad_max_length_is_refused_with_the_form(owner_client, project, real_model):
    dataset = make_dataset(project, ROWS)
    url = reverse("projects:dataset_stats_compute", args=[project.pk, dataset.pk])
    response = owner_client.post(url, {"base_model": real_model.pk, "max_len": 3})
    assert response.status_code == 200
    assert "greater than or equal to 16" in response.content.decode()
    assert not DatasetStats.objects.exists()


def test_the_histogram_puts_the_line_at_the_max_length_and_marks_bars_past_it():
    counts = [0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    result = {"max_len": 100, "histogram": {"width": 10, "counts": counts}}
    chart = histogram_chart(result, Frame(width=160, height=100))
    # 12 buckets of 10 tokens over a 100-pixel plot starting at x = 48.
    assert chart["max_len_x"] == pytest.approx(48 + 100 * 100 / 120, abs=0.1)
    assert [(b["low"], b["count"], b["over"]) for b in chart["bars"]] == [
        (10, 4, False),
        (20, 2, False),
        (110, 1, True),
    ]
    tallest, half = chart["bars"][0]["h"], chart["bars"][1]["h"]
    assert half == pytest.approx(tallest / 2, abs=0.1)


# --- Ownership ---


def stats_urls(dataset) -> list[tuple[str, str, dict]]:
    args = [dataset.project_id, dataset.pk]
    return [
        ("get", reverse("projects:dataset_stats", args=args), {}),
        ("get", reverse("projects:dataset_stats", args=args), {"HTTP_HX_REQUEST": "true"}),
        ("post", reverse("projects:dataset_stats_compute", args=args), {}),
    ]


def test_statistics_404_for_another_user_and_queue_nothing(other_client, project, real_model):
    dataset = make_dataset(project, ROWS)
    for method, url, headers in stats_urls(dataset):
        data = {"base_model": real_model.pk, "max_len": 64}
        assert getattr(other_client, method)(url, data, **headers).status_code == 404, url
    assert not DatasetStats.objects.exists()


def test_statistics_send_anonymous_users_to_login(client, project):
    dataset = make_dataset(project, ROWS)
    for method, url, headers in stats_urls(dataset):
        response = getattr(client, method)(url, **headers)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login"))


def test_the_owner_sees_the_statistics_page(owner_client, project):
    dataset = make_dataset(project, ROWS)
    page = owner_client.get(reverse("projects:dataset_stats", args=[project.pk, dataset.pk]))
    assert page.status_code == 200
    assert re.search(r'data-testid="stats-missing"', page.content.decode())


def test_a_text_corpus_longer_than_the_max_length_is_windowed_not_truncated(
    owner_client, project, real_model, broker, django_capture_on_commit_callbacks
):
    corpus = ("Once upon a time a small robot learned to read. " * 80 + "\n\n") * 2 + "The end.\n"
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("projects:dataset_upload", args=[project.pk]),
            {
                "file": SimpleUploadedFile("stories.txt", corpus.encode()),
                "text_split": "blank_line",
            },
        )
    [message] = queued(broker)
    compute_dataset_stats(*message["args"])
    stats = DatasetStats.objects.get(pk=message["args"][0])

    assert stats.status == "done", stats.error
    assert (stats.result["rows"], stats.result["truncated"]) == (3, 0)
    assert stats.result["windowed"] == 2  # both long stories, at the default 512 tokens
    page = owner_client.get(
        reverse("projects:dataset_stats", args=[project.pk, stats.dataset_id])
    ).content.decode()
    assert 'data-testid="stat-truncated">0%<' in page
    assert 'data-testid="stat-windowed">' in page and "nothing is lost" in page


def test_deleting_a_dataset_while_its_statistics_are_computed_stops_them_quietly(
    project, real_model, monkeypatch, caplog
):
    from projects import datasets
    from projects.jobs.stats import compute
    from training.engine.data import stats as engine_stats

    dataset = make_dataset(project, ROWS * 200)  # 1200 rows: a progress report at 1000
    stats = request_stats(dataset, real_model, MAX_LEN)
    report = DatasetStats.report

    def owner_deletes_it_meanwhile(job, **progress):
        datasets.delete_dataset(Dataset.objects.get(pk=dataset.pk))
        return report(job, **progress)

    monkeypatch.setattr(DatasetStats, "report", owner_deletes_it_meanwhile)
    assert engine_stats.PROGRESS_EVERY == 1000
    compute(stats.pk)  # returns at the next report: no exception, nothing written

    assert not DatasetStats.objects.exists() and not Dataset.objects.exists()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
