import os

import pytest
from playwright.sync_api import expect

from projects.services import request_stats
from projects.stats import compute
from tests.factories import PASSWORD, make_base_model, make_dataset, make_project, make_user
from tests.projects.test_stats import ROWS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_statistics_page_updates_itself_when_the_worker_is_done(page, bundled_model_dir):
    user = make_user("counter@example.com")
    dataset = make_dataset(make_project(owner=user, name="Stats"), ROWS)
    stats = request_stats(dataset, make_base_model(path=str(bundled_model_dir)), 64)
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    page.goto(dataset.get_absolute_url())
    page.get_by_test_id("stats-link").click()
    expect(page.get_by_test_id("stats-computing")).to_be_visible(timeout=10_000)

    compute(stats.pk)  # what the CPU worker does

    expect(page.get_by_test_id("stat-duplicates")).to_have_text("2", timeout=10_000)
    expect(page.get_by_test_id("stat-truncated")).to_have_text("16.7%", timeout=10_000)
    expect(page.get_by_test_id("max-len-line")).to_be_attached(timeout=10_000)
    if os.environ.get("SLMLAB_TEST_ARTIFACTS"):
        page.screenshot(path=os.path.join(os.environ["SLMLAB_TEST_ARTIFACTS"], "stats.png"))
