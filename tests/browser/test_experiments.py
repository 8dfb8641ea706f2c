"""The runs table sorts and filters in place (HTMX), and its checkboxes open a comparison."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import htmx_settled
from tests.factories import PASSWORD, make_base_model, make_project, make_run, make_user
from training.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sort_filter_select_and_compare(page):
    user = make_user("experimenter@example.com")
    project = make_project(owner=user)
    base = make_base_model()
    made = []
    for name, loss, status in (
        ("low", 0.2, "completed"),
        ("high", 0.9, "completed"),
        ("broken", None, "failed"),
    ):
        made.append(
            make_run(
                project,
                base_model=base,
                name=name,
                loss=loss,
                status=status,
                config={"learning_rate": 1e-4 if name == "low" else 3e-4},
            )
        )
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    page.goto(f"/projects/{project.pk}/")
    page.get_by_test_id("runs-table-link").click()

    rows = page.get_by_test_id("runs-row")
    expect(rows).to_have_count(3)
    htmx_settled(page)
    page.get_by_test_id("sort-loss").click()
    expect(page).to_have_url(re.compile(r"sort=loss"))
    expect(rows.first).to_contain_text("low")
    htmx_settled(page)
    page.get_by_test_id("sort-loss").click()  # again: descending
    expect(page).to_have_url(re.compile(r"sort=-loss"))
    expect(rows.first).to_contain_text("high")

    htmx_settled(page)
    page.get_by_test_id("filter-status").select_option(Run.Status.FAILED)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("broken")
    htmx_settled(page)
    page.get_by_test_id("filter-status").select_option("")
    expect(rows).to_have_count(3)

    htmx_settled(page)
    for run in made[:2]:
        page.locator(f"tr[data-run='{run.pk}'] input[type=checkbox]").check()
    page.get_by_test_id("compare-selected").click()
    expect(page).to_have_url(re.compile(r"/runs/compare/\?runs="))
    expect(page.get_by_test_id("legend-run")).to_have_count(2)
    expect(page.locator("[data-testid=diff-row][data-key=learning_rate]")).to_be_visible()
