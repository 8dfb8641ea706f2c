import json
import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, make_base_model, make_dataset, make_project, make_user
from tests.training.conftest import SMOLLM2_135M

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_estimate_follows_the_settings_and_recommend_fills_the_form(page, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2_135M))
    make_base_model(path=str(tmp_path))
    user = make_user("former@example.com")
    project = make_project(owner=user)
    make_dataset(project)
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    page.goto(f"/projects/{project.pk}/runs/new/")

    estimate = page.get_by_test_id("estimate")
    before = int(estimate.get_attribute("data-total-mb"))
    page.locator("input[name=max_seq_len]").fill("2048")
    page.locator("input[name=max_seq_len]").dispatch_event("change")
    expect(page.get_by_test_id("estimate")).not_to_have_attribute("data-total-mb", str(before))
    assert int(page.get_by_test_id("estimate").get_attribute("data-total-mb")) > before

    page.locator("select[name=preset]").select_option("quality")
    page.get_by_test_id("recommend").click()
    expect(page.get_by_test_id("reasons")).to_contain_text("lora_r")
    expect(page.locator("input[name=max_steps]")).to_have_value("0")
    assert re.fullmatch(r"\d+", page.locator("input[name=lora_r]").input_value())
