"""The pages under the Content-Security-Policy: every page of a journey, with its
HTMX swaps, the language menu and dismissed messages, reports no violation (the
``page`` fixture fails a test on any)."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, make_dataset, make_project, make_run, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, user):
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/projects/$"))


def test_the_pages_of_a_journey_break_no_rule_of_the_policy(page):
    user = make_user("careful@example.com", is_staff=True, is_superuser=True)
    project = make_project(owner=user, name="Policed")
    dataset = make_dataset(project)
    run = make_run(project, dataset=dataset)
    log_in(page, user)

    page.goto(project.get_absolute_url())
    page.get_by_role("button", name="Rename").click()  # an HTMX swap
    expect(page.locator("#project-header input[name=name]")).to_be_visible()
    page.goto(dataset.get_absolute_url())
    expect(page.get_by_test_id("row-count")).to_have_text("3")
    page.goto(dataset.get_absolute_url() + "stats/")
    page.goto(run.get_absolute_url())
    expect(page.get_by_test_id("run-status")).to_be_visible()
    page.goto(f"/projects/{project.pk}/runs/new/")
    page.goto("/models/")
    page.goto("/admin/")
    page.goto("/accounts/password/change/")

    # The language menu submits itself, and a message can be dismissed, without inline code.
    page.goto("/projects/")
    page.locator("select[name=language]").select_option("ko")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.locator("select[name=language]").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.locator("#create-project input[name=name]").fill("Second")
    page.locator("#create-project button[type=submit]").click()
    flash = page.locator("#messages .flash")
    expect(flash).to_be_visible()
    flash.locator("[data-dismiss]").click()
    expect(flash).to_have_count(0)
    assert page.csp_violations == []


def test_the_watch_sees_what_the_policy_refuses(page):
    user = make_user("probe@example.com")
    log_in(page, user)
    page.evaluate(
        """() => {
          const img = '<img src="/static/img/logo.svg" onload="1">';
          document.body.insertAdjacentHTML("beforeend", img);
          document.body.setAttribute("style", "color: red");
        }"""
    )
    directives: set[str] = set()
    for _ in range(50):  # the reports arrive asynchronously
        directives = {v["directive"] for v in page.csp_violations}
        if len(directives) >= 2:
            break
        page.wait_for_timeout(100)
    assert {"script-src-attr", "style-src-attr"} <= directives
    page.csp_violations.clear()  # seen: the fixture's final check must pass
