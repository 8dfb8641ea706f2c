"""Evaluations in the lab: pages, downloads, websocket, tenancy, bad input, the worker."""

import csv
import io
import json
import re

import pytest
from django.conf import settings
from django.urls import reverse
from jsonschema import ValidationError

from evaluations.models import BaseOutputs, EvalRow, Evaluation
from tests.factories import make_dataset, make_project, make_run
from tests.schemas import validate_evaluation, validate_run
from tests.streams import content_of
from tests.websockets import connect
from training.engine.evaluate.metrics import DEFAULT_METRICS
from training.models import Run

pytestmark = pytest.mark.django_db

SUMMARY = {
    "examples": 2,
    "metrics": [
        {
            "name": "valid_json",
            "label": "valid JSON",
            "kind": "pass",
            "higher_is_better": True,
            "base": {"mean": 0.03, "low": 0.0, "high": 0.1},
            "tuned": {"mean": 0.96, "low": 0.9, "high": 1.0},
            "test": {
                "test": "mcnemar",
                "difference": 0.93,
                "low": 0.8,
                "high": 1.0,
                "p_value": 1e-7,
                "base_only": 0,
                "tuned_only": 23,
                "significant": True,
            },
            "verdict": "better",
        }
    ],
}


def completed_run(owner, val_percent=25):
    project = make_project(owner=owner)
    dataset = make_dataset(project)
    dataset.val_percent = val_percent
    dataset.save()
    run = make_run(project=project, dataset=dataset, status=Run.Status.COMPLETED)
    run.adapter_dir.mkdir(parents=True)
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    return run


@pytest.fixture
def evaluation(user):
    run = completed_run(user)
    evaluation = Evaluation.objects.create(
        owner=user, run=run, metrics=["valid_json"], status="done", summary=SUMMARY
    )
    EvalRow.objects.create(
        evaluation=evaluation,
        index=0,
        prompt="What is 2 + 2?",
        expected='{"answer": "4"}',
        base_output='=HYPERLINK("http://evil")',
        tuned_output='{"answer": "4"}',
        base_scores={"valid_json": False},
        tuned_scores={"valid_json": True},
        changed=True,
    )
    EvalRow.objects.create(
        evaluation=evaluation,
        index=1,
        prompt="Capital of Hungary?",
        expected='{"answer": "Budapest"}',
        base_output='{"answer": "Budapest"}',
        tuned_output="-Budapest",
        base_scores={"valid_json": True},
        tuned_scores={"valid_json": False},
        changed=True,
        worse=True,
    )
    return evaluation


def pages(evaluation):
    pk = evaluation.pk
    return [
        reverse("evaluations:detail", args=[pk]),
        reverse("evaluations:detail", args=[pk]) + "?fragment=table&show=worse",
        reverse("evaluations:json", args=[pk]),
        reverse("evaluations:csv", args=[pk]),
    ]


def test_every_page_and_download_is_404_to_another_user_and_login_for_anonymous(
    evaluation, other_client, client, htmx_headers
):
    for url in pages(evaluation):
        assert other_client.get(url).status_code == 404, url
        assert other_client.get(url, **htmx_headers).status_code == 404, url
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    for url in (
        reverse("evaluations:cancel", args=[evaluation.pk]),
        reverse("evaluations:new", args=[evaluation.run_id]),
    ):
        assert other_client.post(url).status_code == 404, url
        assert "/accounts/login/" in client.post(url)["Location"], url
    assert Evaluation.objects.count() == 1


def test_the_websocket_is_refused_to_another_user_and_to_anonymous(
    evaluation, user, other_user, transactional_db
):
    path = f"/ws/evaluations/{evaluation.pk}/"
    connected, _, first = connect(path, user)
    assert connected and 'id="evaluation-progress"' in first
    assert connect(path, other_user)[:2] == (False, 4404)
    assert connect(path, None)[:2] == (False, 4404)


def test_the_results_page_says_in_words_whether_tuning_helped(owner_client, evaluation):
    page = owner_client.get(reverse("evaluations:detail", args=[evaluation.pk])).content.decode()
    assert "Tuned is better on valid JSON: 96% vs 3%, p &lt; 0.001." in page
    assert "95% CI 0-10%" in page
    assert page.count('data-testid="example"') == 2
    # Each example: input, expected, both outputs and pass/fail per metric, base -> tuned.
    first = page[page.index('data-testid="example"') :].split("</tr>")[0]
    for text in ("What is 2 + 2?", "{&quot;answer&quot;: &quot;4&quot;}", "=HYPERLINK"):
        assert text in first, text
    assert "valid_json: ✗ → ✓" in first


def test_the_table_filters_worse_changed_and_text(owner_client, evaluation, htmx_headers):
    url = reverse("evaluations:detail", args=[evaluation.pk])
    worse = owner_client.get(url, {"fragment": "table", "show": "worse"}, **htmx_headers)
    body = worse.content.decode()
    assert body.startswith('\n  <div id="eval-table">') or 'id="eval-table"' in body[:200]
    assert body.count('data-testid="example"') == 1 and "Hungary" in body
    changed = owner_client.get(url, {"show": "changed"}).content.decode()
    assert changed.count('data-testid="example"') == 2
    found = owner_client.get(url, {"q": "2 + 2"}).content.decode()
    assert found.count('data-testid="example"') == 1 and "What is 2 + 2?" in found


def test_the_csv_neutralises_cells_a_spreadsheet_would_run(owner_client, evaluation):
    response = owner_client.get(reverse("evaluations:csv", args=[evaluation.pk]))
    rows = list(csv.reader(io.StringIO(content_of(response).decode())))
    assert rows[0][:5] == ["index", "input", "expected", "base_output", "tuned_output"]
    assert rows[1][3] == '\'=HYPERLINK("http://evil")'
    assert rows[2][4] == "'-Budapest"
    assert rows[1][4] == '{"answer": "4"}'


def test_the_json_document_has_the_summary_and_every_example(owner_client, evaluation):
    doc = owner_client.get(reverse("evaluations:json", args=[evaluation.pk])).json()
    assert doc["summary"]["metrics"][0]["test"]["p_value"] == 1e-7
    assert [e["tuned_worse"] for e in doc["examples"]] == [False, True]
    validate_evaluation(doc)  # docs/schema/evaluation.schema.json
    with pytest.raises(ValidationError, match="is not one of"):
        broken = json.loads(json.dumps(doc))
        broken["summary"]["metrics"][0]["test"]["test"] = "t-test"
        validate_evaluation(broken)


def test_the_run_json_lists_its_evaluations_without_their_examples(owner_client, evaluation):
    doc = owner_client.get(reverse("training:run_json", args=[evaluation.run_id])).json()
    [listed] = doc["evaluations"]
    assert listed["id"] == evaluation.pk and listed["summary"] == SUMMARY
    assert "examples" not in listed
    validate_run(doc)  # its evaluations by docs/schema/evaluation.schema.json
    listed["summary"]["metrics"][0]["base"] = {"mean": 0.5}
    with pytest.raises(ValidationError, match="'low' is a required property"):
        validate_run(doc)


def test_a_regex_that_does_not_compile_creates_nothing(owner_client, user, broker):
    run = completed_run(user)
    response = owner_client.post(
        reverse("evaluations:new", args=[run.pk]),
        {"limit": 10, "metrics": ["regex"], "regex": "(unclosed", "max_new_tokens": 16},
    )
    assert response.status_code == 200
    assert "does not compile" in response.content.decode()
    assert not Evaluation.objects.exists()


def test_zero_validation_examples_is_a_clear_message_and_creates_nothing(owner_client, user):
    run = completed_run(user, val_percent=0)
    response = owner_client.post(
        reverse("evaluations:new", args=[run.pk]),
        {"limit": 10, "metrics": ["exact_match"], "max_new_tokens": 16},
    )
    assert "no validation rows" in response.content.decode()
    assert not Evaluation.objects.exists()


def test_starting_an_evaluation_sends_its_id_after_commit(
    owner_client, user, broker, htmx_headers, django_capture_on_commit_callbacks
):
    run = completed_run(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("evaluations:new", args=[run.pk]),
            {"limit": 10, "metrics": ["exact_match", "valid_json"], "max_new_tokens": 16},
            **htmx_headers,
        )
    evaluation = Evaluation.objects.get()
    assert response["HX-Redirect"] == evaluation.get_absolute_url()
    queue = broker.queues[settings.QUEUE_GPU]
    message = json.loads(queue.get_nowait())
    assert (message["actor_name"], message["args"]) == ("run_evaluation", [evaluation.pk])
    # Empty sampling settings: greedy, top-p 1, seed 0.
    assert (evaluation.max_new_tokens, evaluation.temperature) == (16, 0.0)
    assert (evaluation.top_p, evaluation.seed) == (1.0, 0)
    sampled = {"limit": 10, "metrics": ["exact_match"], "max_new_tokens": 8, "temperature": 0.7}
    owner_client.post(
        reverse("evaluations:new", args=[run.pk]), {**sampled, "top_p": 0.9, "seed": 7}
    )
    latest = Evaluation.objects.order_by("-pk").first()
    assert (latest.temperature, latest.top_p, latest.seed) == (0.7, 0.9, 7)
    response = owner_client.post(
        reverse("evaluations:new", args=[run.pk]), {**sampled, "top_p": 0, "seed": -1}
    )
    assert Evaluation.objects.count() == 2  # refused: nothing created
    assert "top_p" in response.context["eval_form"].errors
    assert "seed" in response.context["eval_form"].errors


def test_cancelling_a_queued_evaluation_means_the_worker_never_runs_it(owner_client, user):
    from evaluations.jobs.evaluate import evaluate

    run = completed_run(user)
    evaluation = Evaluation.objects.create(owner=user, run=run, metrics=["exact_match"])
    owner_client.post(reverse("evaluations:cancel", args=[evaluation.pk]))
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled"
    evaluate(evaluation.pk)  # a delivery after the cancel does nothing
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled" and not evaluation.rows.exists()


@pytest.mark.slow
def test_a_run_ends_with_an_evaluation_whose_base_replies_are_reused(
    bundled_model_dir, user, owner_client, broker, run_queued, django_capture_on_commit_callbacks
):
    from tests.factories import make_base_model
    from training.actors import train_next
    from training.engine.data.samples import sample_rows

    project = make_project(owner=user)
    dataset = make_dataset(project, rows=sample_rows(16))
    dataset.val_percent = 25
    dataset.save()
    base = make_base_model(name="bundled", path=str(bundled_model_dir))
    run = make_run(
        project=project,
        dataset=dataset,
        base_model=base,
        config={"max_steps": 3, "batch_size": 2, "max_seq_len": 64, "eval_examples": 3},
    )
    with django_capture_on_commit_callbacks(execute=True):
        train_next(run.pk)
    evaluation = Evaluation.objects.get(run=run)
    assert evaluation.automatic and evaluation.limit == 3
    from evaluations.jobs.evaluate import evaluate

    evaluation.max_new_tokens = 12
    evaluation.save()
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == "done", evaluation.error
    assert evaluation.rows.count() == 3 and not evaluation.base_cached
    names = [m["name"] for m in evaluation.summary["metrics"]]
    assert "valid_json" in names and "loss" in names
    assert BaseOutputs.objects.count() == 1
    again = Evaluation.objects.create(
        owner=user, run=run, limit=3, metrics=evaluation.metrics, max_new_tokens=12
    )
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(again.pk)
    again.refresh_from_db()
    assert again.status == "done" and again.base_cached
    assert [r.base_output for r in again.rows.all()] == [
        r.base_output for r in evaluation.rows.all()
    ]
    doc = owner_client.get(reverse("training:run_json", args=[run.pk])).json()
    assert doc["evaluations"][0]["summary"]["examples"] == 3
    validate_run(doc)
    validate_evaluation(owner_client.get(reverse("evaluations:json", args=[again.pk])).json())
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert 'data-testid="evaluation-link"' in page


@pytest.mark.slow
def test_manage_py_evaluate_scores_a_model_from_a_yaml_file(bundled_model_dir, tmp_path):
    from django.core.management import call_command

    from training.engine.data.samples import eval_prompts, write_jsonl

    data = write_jsonl(tmp_path / "eval.jsonl", eval_prompts()[:2])
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model_dir: {bundled_model_dir}\ndata: {data}\nmax_new_tokens: 6\n"
        "metrics: [exact_match, valid_json, rouge_l]\n"
    )
    out = io.StringIO()
    call_command("evaluate", "--config", str(config), stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["summary"]["examples"] == 2
    assert [m["name"] for m in result["summary"]["metrics"]] == [
        "exact_match",
        "valid_json",
        "rouge_l",
    ]
    assert len(result["examples"]) == 2 and result["examples"][0]["tuned_output"] is None


def test_progress_reported_by_the_worker_is_pushed_to_the_page(user, transactional_db):
    from evaluations import events
    from tests.websockets import push_after_connect

    run = completed_run(user)
    evaluation = Evaluation.objects.create(
        owner=user, run=run, metrics=["exact_match"], status="running", phase="base"
    )

    def report():
        evaluation.report(phase="tuned", examples_done=3, examples_total=8)
        events.publish(evaluation.pk)

    pushed = push_after_connect(f"/ws/evaluations/{evaluation.pk}/", user, report)
    assert 'id="evaluation-progress"' in pushed
    assert "3 / 8" in pushed and "Tuned model" in pushed


def post_file(client, run, name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("evaluations:new", args=[run.pk]),
        {
            "limit": 10,
            "metrics": ["exact_match"],
            "max_new_tokens": 8,
            "eval_file": SimpleUploadedFile(name, content),
        },
    )


def test_an_eval_file_without_expected_outputs_is_refused_and_creates_nothing(owner_client, user):
    run = completed_run(user)
    text = post_file(owner_client, run, "eval.txt", b"just some text\nmore text\n")
    assert "no expected outputs" in text.content.decode()
    questions = post_file(owner_client, run, "eval.jsonl", b'{"instruction": "Say hi"}\n')
    assert "output" in questions.content.decode() and "cannot be read" in questions.content.decode()
    assert not Evaluation.objects.exists()


def test_an_eval_file_in_another_format_and_shape_is_stored_with_how_to_read_it(
    owner_client, user, django_capture_on_commit_callbacks, broker
):
    run = completed_run(user)
    content = b"question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(owner_client, run, "eval.csv", content)
    assert response.status_code == 302
    evaluation = Evaluation.objects.get()
    assert evaluation.eval_spec["format"] == "csv"
    assert evaluation.eval_spec["shape"] == "prompt_completion"
    assert evaluation.eval_spec["mapping"] == {"prompt": "question", "completion": "answer"}
    assert evaluation.eval_file.read() == content


def test_the_run_form_offers_an_end_of_run_evaluation_of_up_to_100_examples(owner_client, user):
    from tests.factories import make_base_model

    make_base_model()
    project = make_project(owner=user)
    make_dataset(project)
    page = owner_client.get(reverse("training:new", args=[project.pk])).content.decode()
    assert "Evaluate on N validation examples at the end" in page
    assert re.search(r'<input type="number" name="eval_examples" value="100"', page)


def test_a_run_ending_queues_its_evaluation_only_when_it_has_rows_to_evaluate(
    user, broker, django_capture_on_commit_callbacks
):
    from evaluations.jobs.end_of_run import queue_end_of_run

    run = completed_run(user)
    run.config.pop("eval_examples", None)  # the engine's default: up to 100
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = queue_end_of_run(run)
    assert evaluation.automatic and evaluation.limit == 100
    assert evaluation.metrics == [*DEFAULT_METRICS, "loss"]
    message = json.loads(broker.queues[settings.QUEUE_GPU].get_nowait())
    assert message["args"] == [evaluation.pk]
    run.config["eval_examples"] = 0  # asked for none
    assert queue_end_of_run(run) is None
    no_validation = completed_run(user, val_percent=0)
    assert queue_end_of_run(no_validation) is None
    assert Evaluation.objects.count() == 1


def test_cancelling_a_running_evaluation_stops_the_worker_at_its_next_report(
    owner_client, evaluation
):
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running", summary={})
    page = owner_client.get(reverse("evaluations:detail", args=[evaluation.pk])).content.decode()
    assert 'data-testid="cancel-evaluation"' in page
    owner_client.post(reverse("evaluations:cancel", args=[evaluation.pk]))
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled"
    assert evaluation.report(phase="tuned", examples_done=1, examples_total=2) is False


def test_the_table_is_paginated_and_the_pages_keep_the_filter(owner_client, evaluation):
    EvalRow.objects.bulk_create(
        EvalRow(
            evaluation=evaluation,
            index=i,
            prompt=f"question {i}",
            expected="x",
            base_output="x",
            tuned_output="y",
            base_scores={"valid_json": False},
            tuned_scores={"valid_json": False},
            changed=True,
        )
        for i in range(2, 32)
    )
    url = reverse("evaluations:detail", args=[evaluation.pk])
    first = owner_client.get(url, {"show": "changed"}).content.decode()
    assert first.count('data-testid="example"') == 25 and "page 1 of 2" in first
    assert "?page=2&show=changed&q=" in first
    second = owner_client.get(url, {"show": "changed", "page": 2}).content.decode()
    assert second.count('data-testid="example"') == 7 and "question 31" in second


def test_the_csv_neutralises_every_formula_start(owner_client, evaluation):
    starts = ["=", "+", "-", "@", "\t", "\r"]
    EvalRow.objects.bulk_create(
        EvalRow(
            evaluation=evaluation,
            index=10 + i,
            prompt=f"{start}prompt",
            expected=f"{start}expected",
            base_output=f"{start}base",
            tuned_output=f"{start}tuned",
            base_scores={"valid_json": False},
            tuned_scores={"valid_json": False},
        )
        for i, start in enumerate(starts)
    )
    response = owner_client.get(reverse("evaluations:csv", args=[evaluation.pk]))
    rows = list(csv.reader(io.StringIO(content_of(response).decode(), newline="")))[3:]
    assert len(rows) == len(starts)
    for row, start in zip(rows, starts, strict=True):
        assert row[1:5] == [f"'{start}{what}" for what in ("prompt", "expected", "base", "tuned")]


def test_the_eval_set_is_the_validation_file_or_else_the_held_out_share(user):
    from django.core.files.base import ContentFile

    from evaluations.jobs.evaluate import run_subject, store_subject
    from tests.factories import make_base_model

    run = completed_run(user)
    evaluation = Evaluation.objects.create(owner=user, run=run, metrics=["exact_match"])
    assert len(run_subject(evaluation).records) == run.dataset.split_sizes()[1] > 0
    dataset = make_dataset(make_project(owner=user))
    held_out = b'{"instruction": "held out", "output": "yes"}\n'
    dataset.validation_file.save("v.jsonl", ContentFile(held_out))
    dataset.validation_row_count = 1
    dataset.save()
    run = make_run(project=dataset.project, dataset=dataset, status=Run.Status.COMPLETED)
    of_run = Evaluation.objects.create(owner=user, run=run, metrics=["exact_match"])
    alone = Evaluation.objects.create(
        owner=user, project=dataset.project, base_model=make_base_model(), dataset=dataset
    )
    for subject in (run_subject(of_run), store_subject(alone)):
        assert [r.fields["instruction"] for r in subject.records] == ["held out"]


def test_zero_examples_in_an_eval_file_or_asked_for_is_refused_and_stores_nothing(
    owner_client, user, settings
):
    from pathlib import Path

    run = completed_run(user)
    for name, content in (("e.jsonl", b"\n\n"), ("e.csv", b"question,answer\n")):
        body = post_file(owner_client, run, name, content).content.decode()
        assert "The eval file cannot be read as an eval set" in body and "empty" in body, name
    zero = owner_client.post(
        reverse("evaluations:new", args=[run.pk]),
        {"limit": 0, "metrics": ["exact_match"], "max_new_tokens": 8},
    )
    assert 'data-field="limit">Ensure this value is greater than or equal to 1.' in (
        zero.content.decode()
    )
    assert not Evaluation.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "evaluations").exists()


def test_cached_base_replies_are_the_owners_and_go_with_the_account(user, other_user):
    from evaluations.jobs.evaluate import DatabaseCache

    replies = {"outputs": ["Paris"], "losses": None}
    DatabaseCache(user.pk).put("k" * 64, replies)
    assert DatabaseCache(user.pk).get("k" * 64) == replies
    assert DatabaseCache(other_user.pk).get("k" * 64) is None  # never a hit on another's
    DatabaseCache(other_user.pk).put("k" * 64, {"outputs": ["Rome"], "losses": None})
    assert DatabaseCache(user.pk).get("k" * 64)["outputs"] == ["Paris"]
    assert BaseOutputs.objects.get(owner=user).hits == 2
    user.delete()
    assert list(BaseOutputs.objects.values_list("owner", flat=True)) == [other_user.pk]
