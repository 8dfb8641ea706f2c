"""A store model evaluated alone from the web, and uploaded eval files through the real job."""

import json
import shutil

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluations.models import Evaluation
from tests.factories import make_base_model, make_dataset, make_project, make_run
from training.models import Run

pytestmark = pytest.mark.django_db

CSV_EVAL = b"question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\nSay hi,hi\n"


def form_data(**extra) -> dict:
    return {
        "limit": 10,
        "metrics": ["exact_match", "contains"],
        "max_new_tokens": 4,
        "temperature": 0,
        **extra,
    }


@pytest.fixture
def project(user):
    project = make_project(owner=user)
    dataset = make_dataset(project)
    dataset.val_percent = 34
    dataset.save()
    return project


@pytest.fixture(scope="module")
def tiny_run_model(bundled_model_dir, tmp_path_factory):
    """(tiny base folder, its adapter): a real model and LoRA adapter made in a second."""
    from tests.exports.helpers import write_adapter, write_tiny_llama

    folder = tmp_path_factory.mktemp("tiny-eval")
    base = write_tiny_llama(folder / "base", bundled_model_dir)
    return base, write_adapter(base, folder / "adapter", scale=0.5)


def test_the_form_and_every_page_of_a_store_evaluation_are_404_to_another_user(
    project, user, owner_client, other_client, client
):
    url = reverse("evaluations:store_new", args=[project.pk])
    assert owner_client.get(url).status_code == 200
    assert other_client.get(url).status_code == 404
    assert other_client.post(url, form_data()).status_code == 404
    assert "/accounts/login/" in client.get(url)["Location"]
    assert "/accounts/login/" in client.post(url, form_data())["Location"]
    evaluation = Evaluation.objects.create(
        owner=user, project=project, base_model=make_base_model(), metrics=["exact_match"]
    )
    for name in ("detail", "json", "csv"):
        page = reverse(f"evaluations:{name}", args=[evaluation.pk])
        assert other_client.get(page).status_code == 404, name
        assert "/accounts/login/" in client.get(page)["Location"], name
    assert other_client.post(reverse("evaluations:cancel", args=[evaluation.pk])).status_code == 404
    assert Evaluation.objects.count() == 1


def test_the_project_page_links_to_the_form_and_lists_its_store_evaluations(
    project, user, owner_client
):
    Evaluation.objects.create(
        owner=user, project=project, base_model=make_base_model(), metrics=["exact_match"]
    )
    page = owner_client.get(project.get_absolute_url()).content.decode()
    assert reverse("evaluations:store_new", args=[project.pk]) in page
    assert page.count('data-testid="store-evaluation"') == 1


def test_a_store_model_on_a_datasets_validation_rows_is_queued_for_a_gpu_worker(
    project, owner_client, broker, django_capture_on_commit_callbacks
):
    model = make_base_model()
    dataset = project.datasets.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("evaluations:store_new", args=[project.pk]),
            form_data(base_model=model.pk, dataset=dataset.pk),
        )
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302 and response["Location"] == evaluation.get_absolute_url()
    assert evaluation.run is None and not evaluation.of_run
    assert (evaluation.base_model, evaluation.dataset, evaluation.project) == (
        model,
        dataset,
        project,
    )
    message = json.loads(broker.queues[settings.QUEUE_GPU].get_nowait())
    assert (message["actor_name"], message["args"]) == ("run_evaluation", [evaluation.pk])


def test_bad_store_evaluations_get_a_clear_message_and_create_nothing(
    project, user, owner_client, other_user
):
    url = reverse("evaluations:store_new", args=[project.pk])
    model = make_base_model()
    nothing = owner_client.post(url, form_data(base_model=model.pk)).content.decode()
    assert "Choose a dataset or upload an eval file." in nothing
    no_val = make_dataset(project, name="all training")
    no_val.val_percent = 0
    no_val.save()
    zero = owner_client.post(url, form_data(base_model=model.pk, dataset=no_val.pk))
    assert "no validation rows" in zero.content.decode()
    theirs = make_dataset(make_project(owner=other_user))
    foreign = owner_client.post(url, form_data(base_model=model.pk, dataset=theirs.pk))
    assert foreign.status_code == 200 and "errorlist" in foreign.content.decode()
    no_answers = owner_client.post(
        url,
        form_data(base_model=model.pk, eval_file=SimpleUploadedFile("e.txt", b"some text\n")),
    )
    assert "no expected outputs" in no_answers.content.decode()
    bad_regex = owner_client.post(
        url,
        form_data(
            base_model=model.pk,
            dataset=project.datasets.first().pk,
            metrics=["regex"],
            regex="(unclosed",
        ),
    )
    assert "does not compile" in bad_regex.content.decode()
    assert not Evaluation.objects.exists()


@pytest.mark.slow
def test_a_store_model_alone_is_scored_on_an_uploaded_csv_by_the_real_job(
    project, owner_client, bundled_model_dir, broker, run_queued, django_capture_on_commit_callbacks
):
    model = make_base_model(name="bundled", path=str(bundled_model_dir))
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("evaluations:store_new", args=[project.pk]),
            form_data(base_model=model.pk, eval_file=SimpleUploadedFile("eval.csv", CSV_EVAL)),
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued(settings.QUEUE_GPU) == ["run_evaluation"]
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "done", evaluation.error
    rows = list(evaluation.rows.all())
    assert [r.expected for r in rows] == ["4", "Paris", "hi"]
    assert all(r.base_output and r.tuned_scores is None for r in rows)
    entry = evaluation.summary["metrics"][0]
    assert entry["name"] == "exact_match" and entry["tuned"] is None and entry["test"] is None
    page = owner_client.get(evaluation.get_absolute_url()).content.decode()
    assert "alone, no adapter" in page and "Tuned output" not in page
    doc = owner_client.get(reverse("evaluations:json", args=[evaluation.pk])).json()
    assert doc["run"] is None and doc["model"] == "bundled" and doc["uploaded_eval_file"]


@pytest.mark.slow
def test_a_store_model_on_a_datasets_validation_rows_scores_the_rows_a_run_holds_out(
    project, owner_client, bundled_model_dir, broker, run_queued, django_capture_on_commit_callbacks
):
    from training.engine.data.pipeline import records_for_run
    from training.run_config import engine_config

    model = make_base_model(name="bundled", path=str(bundled_model_dir))
    dataset = project.datasets.get()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("evaluations:store_new", args=[project.pk]),
            form_data(base_model=model.pk, dataset=dataset.pk, metrics=["exact_match", "loss"]),
        )
    with django_capture_on_commit_callbacks(execute=True):
        run_queued(settings.QUEUE_GPU)
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "done", evaluation.error
    run = make_run(project=project, dataset=dataset, base_model=model)
    held_out = records_for_run(engine_config(run))[1]
    assert len(held_out) >= 1
    assert evaluation.rows.count() == len(held_out)
    assert [m["name"] for m in evaluation.summary["metrics"]] == ["exact_match", "loss"]
    assert evaluation.rows.first().base_scores["loss"] > 0


@pytest.mark.slow
def test_a_runs_evaluation_on_an_uploaded_file_runs_through_the_real_job(
    user, owner_client, tiny_run_model, broker, run_queued, django_capture_on_commit_callbacks
):
    base, adapter = tiny_run_model
    project = make_project(owner=user)
    run = make_run(
        project=project,
        base_model=make_base_model(name="tiny", path=str(base)),
        status=Run.Status.COMPLETED,
    )
    shutil.copytree(adapter, run.adapter_dir)
    chat = b"\n".join(
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        ).encode()
        for q, a in [("What is 2+2?", "4"), ("Capital of France?", "Paris")]
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("evaluations:new", args=[run.pk]),
            {**form_data(), "eval_file": SimpleUploadedFile("eval.jsonl", chat)},
        )
    assert response.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued(settings.QUEUE_GPU) == ["run_evaluation"]
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "done", evaluation.error
    assert evaluation.eval_spec["shape"] == "messages"
    rows = list(evaluation.rows.all())
    assert [(r.prompt, r.expected) for r in rows] == [
        ("What is 2+2?", "4"),
        ("Capital of France?", "Paris"),
    ]
    # The adapter is on: base and tuned replies both exist, scored per metric.
    assert all(r.tuned_scores is not None and "exact_match" in r.tuned_scores for r in rows)
    entry = evaluation.summary["metrics"][0]
    assert entry["tuned"] is not None and entry["test"]["test"] == "mcnemar"


def test_manage_py_evaluate_compares_an_adapter_with_its_base(tiny_run_model, tmp_path):
    import io

    from django.core.management import call_command

    base, adapter = tiny_run_model
    data = tmp_path / "eval.csv"
    data.write_bytes(CSV_EVAL)
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model_dir: {base}\nadapter_dir: {adapter}\ndata: {data}\nformat: csv\n"
        "shape: prompt_completion\nmapping: {prompt: question, completion: answer}\n"
        "max_new_tokens: 4\nmetrics: [exact_match, rouge_l]\n"
    )
    out = io.StringIO()
    call_command("evaluate", "--config", str(config), stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert [e["expected"] for e in result["examples"]] == ["4", "Paris", "hi"]
    assert all(e["tuned_output"] is not None for e in result["examples"])
    exact, rouge = result["summary"]["metrics"]
    assert (exact["test"]["test"], rouge["test"]["test"]) == ("mcnemar", "paired_bootstrap")


def configure_judge(settings, url: str) -> None:
    from tests.fakejudge import KEY

    settings.SLMLAB_JUDGE_URL = url
    settings.SLMLAB_JUDGE_MODEL = "judge-model"
    settings.SLMLAB_JUDGE_API_KEY = KEY


def test_the_llm_judge_is_offered_with_its_prompt_only_when_the_operator_configured_one(
    project, owner_client, settings
):
    url = reverse("evaluations:store_new", args=[project.pk])
    page = owner_client.get(url).content.decode()
    assert 'value="judge"' not in page and "judge-prompt" not in page
    refused = owner_client.post(
        url,
        form_data(
            base_model=make_base_model().pk, dataset=project.datasets.get().pk, metrics=["judge"]
        ),
    )
    assert refused.status_code == 200 and not Evaluation.objects.exists()
    configure_judge(settings, "http://127.0.0.1:9/v1")
    page = owner_client.get(url).content.decode()
    assert 'value="judge"' in page and 'data-testid="judge-prompt"' in page
    assert "judge-model" in page and "Answer with one word: YES or NO." in page


@pytest.mark.slow
def test_a_runs_evaluation_asks_the_llm_judge_through_the_real_job(
    user,
    owner_client,
    tiny_run_model,
    settings,
    broker,
    run_queued,
    django_capture_on_commit_callbacks,
):
    from tests.fakejudge import FakeJudge

    base, adapter = tiny_run_model
    project = make_project(owner=user)
    run = make_run(
        project=project,
        base_model=make_base_model(name="tiny", path=str(base)),
        status=Run.Status.COMPLETED,
    )
    shutil.copytree(adapter, run.adapter_dir)
    with FakeJudge() as judge:
        configure_judge(settings, judge.url)
        with django_capture_on_commit_callbacks(execute=True):
            owner_client.post(
                reverse("evaluations:new", args=[run.pk]),
                {
                    **form_data(metrics=["exact_match", "judge"]),
                    "eval_file": SimpleUploadedFile("eval.csv", CSV_EVAL),
                },
            )
        with django_capture_on_commit_callbacks(execute=True):
            run_queued(settings.QUEUE_GPU)
        evaluation = Evaluation.objects.get()
        assert evaluation.status == "done", evaluation.error
        assert len(judge.requests) == 2 * 3  # base and tuned reply of each example
    rows = list(evaluation.rows.all())
    assert all(isinstance(r.base_scores["judge"], bool) for r in rows)
    assert all(isinstance(r.tuned_scores["judge"], bool) for r in rows)
    names = [m["name"] for m in evaluation.summary["metrics"]]
    assert names == ["exact_match", "judge"]
    page = owner_client.get(evaluation.get_absolute_url()).content.decode()
    assert 'data-testid="judge-prompt"' in page
