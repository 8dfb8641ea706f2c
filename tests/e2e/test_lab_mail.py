"""Password reset in the lab as `./lab start` runs it, with no mail server anywhere."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import watch_csp

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]


def test_a_password_reset_is_written_to_the_mail_folder_the_banner_names(browser, live_lab):
    mail_dir = live_lab["data_dir"] / "mail"
    assert f"Mail      written to files in {mail_dir}/" in live_lab["log"].read_text()
    context = browser.new_context()
    violations = watch_csp(context)
    page = context.new_page()
    page.goto(live_lab["url"] + "/accounts/password/reset/")
    page.locator("input[name=email]").fill(live_lab["email"])
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/accounts/password/reset/done/$"))
    newest = max(mail_dir.iterdir(), key=lambda path: path.stat().st_mtime)
    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+", newest.read_text())
    assert link is not None
    context.close()
    assert violations == [], violations
