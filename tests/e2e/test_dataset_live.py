"""The dataset page through real parts: its token preview, setting checks and statistics
are computed by the CPU worker and arrive over the dataset's websocket."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import watch_csp
from tests.e2e.test_journey import WS_PROBE, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

DROP = """([selector, name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "text/csv"}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}"""
CSV = "question,answer,topic\nWhat is 2 + 2?,4,maths\nName a colour,red,art\n"


def test_a_dropped_csv_is_previewed_rechecked_and_counted_by_the_worker(browser, live_lab):
    url = live_lab["url"]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    violations = watch_csp(context)
    context.set_default_timeout(30_000)
    page = context.new_page()
    log_in(page, url, live_lab["email"], live_lab["password"])
    page.locator("#create-project input[name=name]").fill("Live dataset")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_test_id("project-name")).to_have_text("Live dataset")

    page.evaluate(DROP, ["[data-testid=dropzone]", "quiz.csv", CSV])
    page.get_by_role("button", name="Upload dataset").click()
    # A CSV is checked whole by the CPU worker here (see live_lab); the page follows it.
    expect(page.get_by_test_id("row-count")).to_have_text("2", timeout=60_000)
    expect(page.get_by_test_id("dataset-shape")).to_have_text("prompt / completion")
    dataset_path = re.search(r"/projects/\d+/datasets/(\d+)/", page.url)
    dataset_id = int(dataset_path.group(1))

    # The worker's tokens arrive over the websocket: trained, masked and the EOS.
    preview = page.get_by_test_id("token-preview")
    expect(preview.locator(".tok-trained.tok-eos").first).to_be_visible(timeout=60_000)
    expect(preview.locator(".tok-masked").first).to_be_visible()

    # Editing the template updates the preview without saving anything.
    page.locator("select[name=template]").select_option("custom")
    page.locator("textarea[name=custom_template]").fill("")
    page.locator("textarea[name=custom_template]").press_sequentially("[{nope}] {output}")
    expect(page.get_by_test_id("preview-errors")).to_contain_text("unknown placeholder {nope}")
    page.locator("textarea[name=custom_template]").fill("[{topic}] Q: {prompt} A: {output}")
    expect(preview.locator(".token-sample").first).to_contain_text("[maths] Q:")
    expect(preview.locator(".tok-trained").first).to_have_text("4")

    # Saving has the worker check every row, then the page opens what it saved.
    page.get_by_test_id("shape").select_option("text")
    expect(page.locator("select[name=map_text]")).to_be_visible()
    page.locator("select[name=map_text]").select_option("question")
    page.get_by_test_id("save-settings").click()
    expect(page.get_by_test_id("settings-saved")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("dataset-shape")).to_have_text("plain text")

    # Statistics of the saved settings, computed by the worker, pushed to the page.
    page.get_by_test_id("stats-link").click()
    expect(page.get_by_test_id("stat-rows")).to_have_text("2", timeout=120_000)
    expect(page.get_by_test_id("max-len-line")).to_be_attached()

    # Another user: the page 404s and the dataset's websocket is refused.
    probe = page.evaluate(WS_PROBE, f"/ws/datasets/{dataset_id}/")
    assert probe["seen"][0] == "open"
    intruder = browser.new_context()
    other = intruder.new_page()
    other.goto(url + "/accounts/signup/")
    other.locator("input[name=email]").fill("dataset-intruder@example.com")
    other.locator("input[name=password1]").fill("a-Long-test-passw0rd")
    other.locator("input[name=password2]").fill("a-Long-test-passw0rd")
    other.locator("main button[type=submit]").click()
    expect(other).to_have_url(re.compile(r"/projects/$"))
    assert other.request.get(url + dataset_path.group(0)).status == 404
    refused = other.evaluate(WS_PROBE, f"/ws/datasets/{dataset_id}/")
    assert "open" not in refused["seen"]
    intruder.close()
    context.close()
    assert violations == [], violations
