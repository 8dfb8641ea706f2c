"""The Help page's first fine-tune, followed in a browser: each step's screenshot is taken
here and saved into static/help/ (run this test to regenerate them after a UI change).

The run, its end-of-run evaluation and the adapter export are real: their queued actors
run in this process, as a worker would, on the bundled model."""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from evaluations.models import Evaluation
from exports.models import Export
from slmlab.help import SCREENSHOTS
from tests.factories import PASSWORD, make_base_model

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HELP_DIR = Path(__file__).resolve().parent.parent.parent / "static" / "help"


def shoot(target, name: str) -> None:
    assert name in SCREENSHOTS, name
    target.screenshot(path=str(HELP_DIR / f"{name}.jpg"), type="jpeg", quality=70)


def as_worker(run_queued, queue: str) -> list[str]:
    """Run ``queue``'s messages in another thread, as a worker process would: this thread
    runs Playwright's event loop, where the worker code's synchronous pushes cannot run."""
    from django.db import connections

    def work() -> list[str]:
        try:
            return run_queued(queue)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def test_it_follows_the_first_fine_tune_and_saves_the_help_screenshots(
    page, user, bundled_model_dir, broker, run_queued
):
    make_base_model(name="SmolLM2-135M-Instruct", path=str(bundled_model_dir))
    HELP_DIR.mkdir(parents=True, exist_ok=True)
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/projects/$"))

    # 1. A project with the JSON-answer sample.
    page.locator("#create-project input[name=name]").fill("JSON answers")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_test_id("project-name")).to_have_text("JSON answers")
    expect(page.get_by_test_id("add-sample")).to_be_visible()
    shoot(page, "1-project")
    page.get_by_test_id("add-sample").click()

    # 2. The sample's dataset page, with a fifth of its rows held out for validation.
    expect(page.get_by_test_id("split-summary")).to_be_visible()
    page.get_by_text("Change the split").click()
    page.locator("[data-testid=split-form] input[name=val_percent]").fill("20")
    page.get_by_role("button", name="Save split").click()
    expect(page.get_by_test_id("split-summary")).to_contain_text("validation rows")
    shoot(page, "2-dataset")

    # 3. The run form as it opens, then a short run (a few steps, two examples scored).
    page.get_by_role("button", name="Train on this").click()
    expect(page.get_by_test_id("estimate-total")).to_be_visible()
    shoot(page, "3-run-form")
    page.locator("input[name=max_steps]").fill("4")
    page.locator("input[name=batch_size]").fill("2")
    page.locator("input[name=max_seq_len]").fill("96")
    page.locator("input[name=eval_examples]").fill("2")
    page.get_by_test_id("start-run").click()
    expect(page.get_by_test_id("run-status")).to_be_visible()
    run_url = page.url

    # 4. The run trains (then its end-of-run evaluation runs) on this process's "worker".
    ran = as_worker(run_queued, settings.QUEUE_GPU)
    assert "train_next" in ran and "run_evaluation" in ran, ran
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "done", evaluation.error
    page.goto(run_url)
    expect(page.get_by_test_id("run-status")).to_have_text("completed")
    expect(page.get_by_test_id("loss")).not_to_have_text("\u2013")
    shoot(page, "4-run")

    # 5. The evaluation: base against tuned on the held-out rows.
    page.get_by_test_id("evaluation-link").get_by_role("link").click()
    expect(page.get_by_test_id("scores")).to_be_visible()
    shoot(page, "5-evaluation")

    # 6. "Download adapter" queues the adapter export; once verified, it downloads.
    page.goto(run_url)
    page.locator("button[data-testid=download-adapter]").click()
    expect(page.get_by_test_id("adapter-preparing")).to_be_visible()
    assert "run_export" in as_worker(run_queued, settings.QUEUE_DEFAULT)
    export = Export.objects.get()
    assert export.status == "done", export.error
    page.reload()  # (a goto to run_url + "#exports" would only scroll, not reload)
    expect(page.locator("a[data-testid=download-adapter]")).to_be_visible()
    shoot(page.get_by_test_id("exports"), "6-exports")

    # The Help page shows every screenshot, and the glossary is one click away.
    page.get_by_test_id("help-link").click()
    shots = page.get_by_test_id("help-shot")
    expect(shots).to_have_count(len(SCREENSHOTS))
    for i in range(len(SCREENSHOTS)):
        assert shots.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
    page.get_by_test_id("glossary-link").click()
    expect(page.locator("dt#qlora")).to_be_visible()
