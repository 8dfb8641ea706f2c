"""Datasets a model writes: the recipe form, the GPU job with the bundled model, ownership."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from projects import events
from projects.models import Dataset, SyntheticGeneration
from tests import websockets
from tests.exports.helpers import write_adapter
from tests.factories import make_base_model, make_dataset, make_project, make_run, make_user
from training.engine.data import model_recipe
from training.engine.data.model_recipe import Keeper, ModelRecipe, OutputCheck
from training.engine.inference import synthesize
from training.models import Run

pytestmark = pytest.mark.django_db

RECIPE = {
    "name": "Colours",
    "model": "bundled",
    "instruction": "Name one thing that is {colour}.",
    "input": "",
    "table": "",
    "lists": "colour: red | green | blue | yellow",
    "examples": '{"instruction": "Name one thing that is white.", "output": "Snow."}',
    "rows": 4,
    "temperature": 0,
    "seed": 1,
    "max_new_tokens": 16,
    "check": "none",
    "regex": "",
    "min_chars": "",
    "max_chars": "",
    "dedupe": "on",
}


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Synthetic")


def page_url(project):
    return reverse("projects:dataset_from_model", args=[project.pk])


def leftovers():
    tmp = Path(settings.MEDIA_ROOT) / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


# -- the engine's rules, without a model ----------------------------------------------------


def test_checks_empty_replies_and_duplicates_decide_what_is_kept():
    prompt = {"instruction": "Q", "input": ""}
    keeper = Keeper(ModelRecipe("Q", check=OutputCheck("valid_json")))
    for reply in ['{"a": 1}', "not json", '{"a": 2}', "", '{"a":  1}']:  # spacing aside
        keeper.offer(prompt, reply)
    assert [r["output"] for r in keeper.rows] == ['{"a": 1}', '{"a": 2}']
    tally = keeper.tally
    assert (tally.generated, tally.kept, tally.failed_check, tally.duplicates) == (5, 2, 2, 1)

    assert OutputCheck("regex", r"^\d+$").passes("42") and not OutputCheck("regex", "^x").passes(
        "y"
    )
    length = OutputCheck("length", min_chars=3, max_chars=5)
    assert [length.passes(t) for t in ("ab", " abc ", "abcdef")] == [False, True, False]
    kept_twice = Keeper(ModelRecipe("Q", dedupe=False))
    kept_twice.offer(prompt, "same")
    kept_twice.offer(prompt, "same")
    assert kept_twice.tally.kept == 2


def test_prompts_draw_every_combination_before_repeating_and_show_the_examples():
    recipe = ModelRecipe("Say {w}", lists="w: a | b | c", rows=7, temperature=1.0, seed=5)
    plan = model_recipe.check(recipe)
    rows = model_recipe.prompts(plan)
    assert sorted(r["instruction"] for r in rows[:3]) == ["Say a", "Say b", "Say c"]
    assert len(rows) == 7 and rows == model_recipe.prompts(plan)  # seeded
    example = [{"instruction": "Say z", "input": "", "output": "z"}]
    chat = model_recipe.messages(rows[0], example, chat=True)
    assert [m["role"] for m in chat] == ["user", "assistant", "user"]
    single = model_recipe.messages(rows[0], example, chat=False)
    assert single[0]["role"] == "system" and "Answer: z" in single[0]["content"]


# -- the form --------------------------------------------------------------------------------


def test_the_page_starts_from_an_example_and_previews_prompts_creating_nothing(
    owner_client, project, htmx_headers
):
    page = owner_client.get(page_url(project)).content.decode()
    assert 'data-testid="no-models"' in page
    make_base_model(name="bundled")
    page = owner_client.get(page_url(project)).content.decode()
    assert "{thing}" in page and 'data-testid="no-models"' not in page
    assert 'data-testid="model-recipe-form"' in page
    assert 'value="bundled"' in page
    response = owner_client.post(page_url(project), {**RECIPE, "preview": "1"}, **htmx_headers)
    html = response.content.decode()
    assert html.count('data-testid="prompt-row"') == 4 and "is red." in html
    assert not SyntheticGeneration.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"instruction": "Name a {color} thing."}, "unknown slot {color}"),
        ({"rows": model_recipe.MAX_ROWS + 1}, f"less than or equal to {model_recipe.MAX_ROWS}"),
        ({"rows": 5}, "only 4 different prompts"),  # greedy: one reply per prompt
        ({"check": "regex", "regex": "(unclosed"}, "does not compile"),
        ({"check": "regex", "regex": ""}, "needs a pattern"),
        ({"check": "length"}, "give a minimum, a maximum or both"),
        ({"check": "length", "min_chars": 9, "max_chars": 3}, "the maximum is below"),
        ({"examples": "Name a thing -> Snow"}, "examples line 1: not JSON"),
        ({"examples": '{"instruction": "x"}'}, "needs an “instruction” and an “output”"),
        ({"model": "run-999"}, "Select a valid choice"),
    ],
)
def test_bad_recipes_get_the_reason_and_create_nothing(
    owner_client, project, broker, htmx_headers, changes, message
):
    make_base_model(name="bundled")
    response = owner_client.post(page_url(project), {**RECIPE, **changes})
    assert response.status_code == 400
    assert message in response.content.decode()
    # With htmx, the form with its errors (htmx swaps only 2xx answers).
    swapped = owner_client.post(page_url(project), {**RECIPE, **changes}, **htmx_headers)
    assert swapped.status_code == 200 and message in swapped.content.decode()
    assert swapped.content.decode().lstrip().startswith('<form id="model-recipe"')
    assert not SyntheticGeneration.objects.exists() and not Dataset.objects.exists()
    queue = broker.queues.get(settings.QUEUE_GPU)
    assert queue is None or queue.empty()


def test_a_generation_is_queued_on_the_gpu_queue(
    owner_client, project, broker, htmx_headers, django_capture_on_commit_callbacks
):
    make_base_model(name="bundled")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(page_url(project), RECIPE, **htmx_headers)
    assert response["HX-Redirect"] == page_url(project)
    item = SyntheticGeneration.objects.get()
    assert (item.owner, item.project, item.model_ref, item.rows_total) == (
        project.owner,
        project,
        "bundled",
        4,
    )
    assert item.recipe["check"] == {
        "kind": "none",
        "regex": "",
        "min_chars": None,
        "max_chars": None,
    }
    assert broker.queues[settings.QUEUE_GPU].qsize() == 1
    page = owner_client.get(page_url(project)).content.decode()
    assert f'ws-connect="/ws/synthetic/{item.pk}/"' in page and "waiting for a GPU worker" in page


def finished_run(project, base, template="model", owner=None):
    dataset = make_dataset(project)
    dataset.template = template
    dataset.save()
    run = make_run(project=project, dataset=dataset, base_model=base, name="tuned")
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED)
    run.refresh_from_db()
    return run


def test_the_owners_fine_tunes_are_offered_and_no_one_elses(owner_client, project, user):
    base = make_base_model(name="bundled")
    mine = finished_run(project, base)
    (mine.adapter_dir).mkdir(parents=True)
    (mine.adapter_dir / "adapter_config.json").write_text("{}")
    stranger = make_user("stranger@example.com")
    theirs = finished_run(make_project(owner=stranger), base)
    theirs.adapter_dir.mkdir(parents=True)
    (theirs.adapter_dir / "adapter_config.json").write_text("{}")
    page = owner_client.get(page_url(project)).content.decode()
    assert f'value="run-{mine.pk}"' in page and f'value="run-{theirs.pk}"' not in page
    response = owner_client.post(page_url(project), {**RECIPE, "model": f"run-{theirs.pk}"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not SyntheticGeneration.objects.exists()


# -- the job, with the bundled model ---------------------------------------------------------


def start(owner_client, project, capture, **changes) -> SyntheticGeneration:
    with capture(execute=True):
        owner_client.post(page_url(project), {**RECIPE, **changes})
    return SyntheticGeneration.objects.get()


@pytest.mark.slow
def test_the_bundled_model_writes_a_normal_dataset_with_a_note(
    bundled_model_dir, owner_client, project, broker, run_queued, django_capture_on_commit_callbacks
):
    make_base_model(name="bundled", path=str(bundled_model_dir))
    item = start(owner_client, project, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued(settings.QUEUE_GPU) == ["generate_synthetic"]
    item.refresh_from_db()
    assert item.status == "done", item.error
    dataset = item.result
    assert (dataset.project, dataset.name, dataset.version, dataset.shape) == (
        project,
        "Colours",
        1,
        "alpaca",
    )
    assert item.generated == 4 and item.kept == dataset.row_count
    assert item.kept + item.duplicates + item.failed_check == 4
    rows = [json.loads(line) for line in Path(dataset.file.path).read_text().splitlines()]
    assert {r["instruction"] for r in rows} <= {
        f"Name one thing that is {c}." for c in ("red", "green", "blue", "yellow")
    }
    assert all(r["output"].strip() for r in rows)
    assert dataset.description.startswith(
        f"Generated by the model bundled: {item.kept} rows kept of 4 generated"
    )
    assert "Temperature 0, seed 1" in dataset.description
    assert "Seed examples: 1" in dataset.description and leftovers() == []
    page = owner_client.get(page_url(project)).content.decode()
    assert dataset.get_absolute_url() in page


@pytest.mark.slow
def test_a_check_that_drops_every_row_fails_clearly_and_stores_nothing(
    bundled_model_dir, owner_client, project, broker, run_queued, django_capture_on_commit_callbacks
):
    # The writer is a fine-tune trained with the Alpaca template: its adapter on its base.
    base = make_base_model(name="bundled", path=str(bundled_model_dir))
    run = finished_run(project, base, template="alpaca")
    write_adapter(bundled_model_dir, run.adapter_dir, scale=0.1)
    item = start(
        owner_client,
        project,
        django_capture_on_commit_callbacks,
        model=f"run-{run.pk}",
        check="regex",
        regex="^never-said$",
        max_new_tokens=4,
    )
    assert item.run == run and item.model_label == "tuned (tuned bundled)"
    with django_capture_on_commit_callbacks(execute=True):
        run_queued(settings.QUEUE_GPU)
    item.refresh_from_db()
    assert item.status == "failed"
    assert item.error.startswith("Every one of the 4 generated rows was dropped (4 empty or")
    assert "so no dataset was made" in item.error
    assert list(Dataset.objects.all()) == [run.dataset] and leftovers() == []
    fragment = owner_client.get(
        reverse("projects:generation_status", args=[project.pk, item.pk])
    ).content.decode()
    assert "so no dataset was made" in fragment


@pytest.mark.slow
def test_prompts_too_long_for_the_context_fail_before_generating(
    bundled_model_dir, owner_client, project, broker, run_queued, django_capture_on_commit_callbacks
):
    make_base_model(name="bundled", path=str(bundled_model_dir), context_length=40)
    item = start(owner_client, project, django_capture_on_commit_callbacks)
    run_queued(settings.QUEUE_GPU)
    item.refresh_from_db()
    assert item.status == "failed" and item.generated == 0
    assert "passes the model's context of 40" in item.error, item.error
    assert not Dataset.objects.exists() and leftovers() == []


@pytest.mark.slow
def test_a_generation_cancelled_while_it_runs_stores_nothing(
    bundled_model_dir,
    owner_client,
    project,
    broker,
    run_queued,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    make_base_model(name="bundled", path=str(bundled_model_dir))
    item = start(owner_client, project, django_capture_on_commit_callbacks, max_new_tokens=4)
    monkeypatch.setattr(synthesize, "BATCH_SIZE", 2)
    pushes = []

    def owner_cancels_after_the_first_batch(generation_id):
        pushes.append(generation_id)
        if len(pushes) == 2:  # the push after claiming, then the first batch's
            SyntheticGeneration.objects.get(pk=generation_id).cancel()

    monkeypatch.setattr(events, "publish_generation", owner_cancels_after_the_first_batch)
    run_queued(settings.QUEUE_GPU)
    item.refresh_from_db()
    assert item.status == "cancelled" and item.generated == 2
    assert not Dataset.objects.exists() and leftovers() == []


# -- ownership -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the websocket's consumer reads from its own thread
def test_another_user_gets_404_for_every_page_fragment_and_websocket(owner_client, client, user):
    project = make_project(owner=user)
    make_base_model(name="bundled")
    item = SyntheticGeneration.objects.create(
        owner=user,
        project=project,
        name="x",
        model_ref="bundled",
        model_label="bundled",
        recipe={},
        rows_total=4,
        status="running",
    )
    status = reverse("projects:generation_status", args=[project.pk, item.pk])
    cancel = reverse("projects:generation_cancel", args=[project.pk, item.pk])
    for url in (page_url(project), status):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    stranger = make_user("stranger@example.com")
    client.force_login(stranger)
    for url in (page_url(project), status):
        assert client.get(url).status_code == 404, url
        assert owner_client.get(url).status_code == 200, url
    assert client.post(page_url(project), RECIPE).status_code == 404
    assert client.post(cancel).status_code == 404
    item.refresh_from_db()
    assert item.status == "running"
    theirs = make_project(owner=stranger)
    other = reverse("projects:generation_status", args=[theirs.pk, item.pk])
    assert client.get(other).status_code == 404
    assert SyntheticGeneration.objects.count() == 1

    connected, code, _ = websockets.connect(f"/ws/synthetic/{item.pk}/", stranger)
    assert not connected and code == 4404
    connected, _, _ = websockets.connect(f"/ws/synthetic/{item.pk}/", None)
    assert not connected
    connected, _, state = websockets.connect(f"/ws/synthetic/{item.pk}/", user)
    assert connected and f'id="synthetic-generation-{item.pk}"' in state
    assert owner_client.post(cancel).status_code == 200
    item.refresh_from_db()
    assert item.status == "cancelled"


@pytest.mark.django_db(transaction=True)  # the push is sent after commit
def test_progress_is_pushed_to_the_owners_page(user):
    project = make_project(owner=user)
    item = SyntheticGeneration.objects.create(
        owner=user,
        project=project,
        name="x",
        model_ref="bundled",
        model_label="bundled",
        recipe={},
        rows_total=4,
        status="running",
    )

    def a_batch_is_done():
        item.report(generated=2, kept=1, failed_check=1)
        events.publish_generation(item.pk)

    pushed = websockets.push_after_connect(f"/ws/synthetic/{item.pk}/", user, a_batch_is_done)
    assert "2 of 4 generated · 1 kept · 1 failed the check · 0 duplicates" in pushed
    assert 'value="50"' in pushed


def test_a_model_pretrained_in_the_lab_writes_a_dataset_with_its_own_weights(
    user, owner_client, broker, run_queued, django_capture_on_commit_callbacks
):
    from tests.pretrained import pretrained_run

    run = pretrained_run(user)  # a real tiny model, context 128 tokens
    page = owner_client.get(page_url(run.project)).content.decode()
    assert f'value="run-{run.pk}"' in page and "(pretrained in the lab)" in page
    item = start(
        owner_client,
        run.project,
        django_capture_on_commit_callbacks,
        model=f"run-{run.pk}",
        examples="",
        temperature=0.8,
        max_new_tokens=8,
    )
    assert item.run == run and item.base_model is None
    with django_capture_on_commit_callbacks(execute=True):
        run_queued(settings.QUEUE_GPU)
    item.refresh_from_db()
    assert item.status == "done", item.error
    assert item.generated == 4 and item.result.row_count == item.kept > 0
    # Asked for more than its design's context holds, it refuses before generating.
    SyntheticGeneration.objects.all().delete()
    item = start(
        owner_client,
        run.project,
        django_capture_on_commit_callbacks,
        model=f"run-{run.pk}",
        examples="",
        max_new_tokens=200,
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_queued(settings.QUEUE_GPU)
    item.refresh_from_db()
    assert item.status == "failed" and item.generated == 0
    assert "128" in item.error, item.error
