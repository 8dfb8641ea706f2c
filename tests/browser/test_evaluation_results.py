"""From the run page to an evaluation's per-example table and its CSV, in a browser."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from evaluations.models import EvalRow, Evaluation
from tests.evaluations.test_evaluations import SUMMARY, completed_run
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_follows_a_run_to_its_evaluation_table_and_downloads_the_csv(page, user):
    run = completed_run(user)
    evaluation = Evaluation.objects.create(
        owner=user,
        run=run,
        metrics=["valid_json"],
        status="done",
        summary=SUMMARY,
        automatic=True,
    )
    for i in range(30):
        worse = i == 7
        EvalRow.objects.create(
            evaluation=evaluation,
            index=i,
            prompt=f"question {i}",
            expected='{"answer": "x"}',
            base_output="prose" if not worse else '{"answer": "x"}',
            tuned_output='{"answer": "x"}' if not worse else "=1+1",
            base_scores={"valid_json": worse},
            tuned_scores={"valid_json": not worse},
            changed=True,
            worse=worse,
        )
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    page.goto(run.get_absolute_url())
    page.get_by_test_id("evaluation-link").get_by_role("link").click()
    expect(page.get_by_test_id("scores")).to_contain_text("Tuned is better on valid JSON")
    expect(page.get_by_test_id("example")).to_have_count(25)  # one page
    page.get_by_test_id("filter").select_option("worse")
    expect(page.get_by_test_id("example")).to_have_count(1)
    expect(page.get_by_test_id("example")).to_contain_text("question 7")
    with page.expect_download() as download:
        page.get_by_test_id("download-csv").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "'=1+1" in text and text.count("\n") == 31
