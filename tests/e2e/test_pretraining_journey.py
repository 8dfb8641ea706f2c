"""Designing and pretraining a model through real parts: browser → daphne → Redis →
worker → websocket → browser. A design with one error fixed in place, a tokenizer
trained on the worker, a short pretraining whose sampled text arrives without a reload."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import htmx_settled, watch_csp
from tests.e2e.test_journey import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]


def test_compose_a_design_train_its_tokenizer_and_watch_it_learn(browser, live_lab):
    url = live_lab["url"]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    violations = watch_csp(context)
    context.set_default_timeout(30_000)
    page = context.new_page()
    log_in(page, url, live_lab["email"], live_lab["password"])

    page.locator("#create-project input[name=name]").fill("Tiny stories model")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_test_id("project-name")).to_have_text("Tiny stories model")
    project_url = page.url
    page.get_by_test_id("add-sample-pretraining-stories").click()
    expect(page.get_by_text("Sample: pretraining stories").first).to_be_visible()
    page.goto(project_url)

    # A 512-token BPE tokenizer, trained on the worker; its page follows the job live.
    page.get_by_test_id("tokenizers-link").click()
    page.locator("input[name=vocab_size]").fill("512")
    page.get_by_role("button", name="Train a tokenizer").click()
    expect(page.get_by_test_id("vocab")).to_have_text(re.compile(r"^\d+$"), timeout=180_000)

    # A Llama-style tiny design, made smaller; a width no head count divides is
    # refused next to the field, then fixed in place.
    page.goto(project_url)
    page.get_by_test_id("designs-link").click()
    page.get_by_role("button", name="New design").click()
    htmx_settled(page)
    form = page.get_by_test_id("design-form")
    form.locator("select[name=tokenizer]").select_option(index=1)
    form.locator("input[name=vocab_size]").fill("512")
    form.locator("input[name=sequence_length]").fill("64")
    form.locator("input[name=hidden_size]").fill("66")
    expect(page.locator("#error-layers-0-heads")).to_contain_text("not divisible", timeout=20_000)
    expect(page.get_by_test_id("invalid")).to_be_visible()
    form.locator("input[name=hidden_size]").fill("64")
    expect(page.locator("#error-layers-0-heads")).to_have_text("", timeout=20_000)
    expect(page.get_by_test_id("parameters")).to_be_visible()
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()

    # A short pretraining; the run page shows text sampled as it trains, pushed live.
    page.reload()
    htmx_settled(page)
    pretrain = page.get_by_test_id("pretrain-form")
    pretrain.locator("input[name=steps]").fill("8")
    pretrain.locator("input[name=sample_every]").fill("4")
    pretrain.locator("input[name=sample_prompt]").fill("Mia went")
    pretrain.get_by_test_id("start-pretraining").click()
    expect(page.get_by_test_id("run-kind")).to_contain_text("Pretraining")
    htmx_settled(page)
    expect(page.get_by_test_id("sample").first).to_contain_text("Mia went", timeout=300_000)
    expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=120_000)
    expect(page.get_by_test_id("perplexity")).not_to_have_text("\u2013")
    expect(page.locator("#generate-form")).to_be_visible(timeout=30_000)
    assert not violations, violations
    context.close()
