"""The Playground through real parts: a browser opens it from the run page's Compare
button, sends a message, and the bundled model and the tuned run answer side by side,
streamed from a Dramatiq worker process through Redis and the websocket (daphne)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser_fixtures import watch_csp
from tests.playground.servinglab import ServingLab

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

# Counts the websocket pushes that reach the page (htmx's ws extension fires this event).
COUNT_PUSHES = """() => { window.__pushes = 0;
  document.body.addEventListener("htmx:wsAfterMessage", () => { window.__pushes += 1; }); }"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, bundled_model_dir):
    # Pages need the collected static files (the API alone, which ServingLab was made
    # for, does not): collected into a folder of this test's, which daphne then serves.
    static_root = tmp_path_factory.mktemp("static")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="slmlab.settings", STATIC_ROOT=str(static_root))
    env["SLMLAB_DATA_DIR"] = str(tmp_path_factory.mktemp("collect"))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STATIC_ROOT", str(static_root))
        serving = ServingLab(tmp_path_factory.mktemp("playground"))
    yield serving
    serving.close()
    web_log = (serving.data_dir / "web.log").read_text()
    assert "Exception inside application" not in web_log, web_log


def test_compare_opens_the_playground_and_both_columns_stream_an_answer(browser, lab) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    violations = watch_csp(context)
    page = context.new_page()
    page.goto(lab.url + "/accounts/login/")
    page.locator("input[name=login]").fill("serve@example.com")
    page.locator("input[name=password]").fill("a-Long-test-passw0rd")
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/projects/$"))

    run_id = lab.run_model.removeprefix("run-")
    page.goto(f"{lab.url}/runs/{run_id}/")
    page.get_by_test_id("compare").click()
    expect(page).to_have_url(re.compile(r"/playground/\?model="))
    expect(page.locator("select[name=model_1]")).to_have_value(lab.base_name)
    expect(page.locator("select[name=model_2]")).to_have_value(lab.run_model)

    page.locator("details[data-testid=settings] summary").click()
    page.locator("input[name=max_new_tokens]").fill("12")
    page.locator("input[name=temperature]").fill("0")
    page.locator("textarea[name=content]").fill("Say hello in one word.")
    page.get_by_test_id("send").click()
    expect(page).to_have_url(re.compile(r"/playground/\d+/$"))
    page.evaluate(COUNT_PUSHES)

    answers = page.get_by_test_id("answer")
    expect(answers).to_have_count(2, timeout=10_000)
    for column in range(2):
        answer = page.locator(f"[data-testid=answer][data-column='{column}']")
        expect(answer).to_have_attribute("data-status", "done", timeout=240_000)
        expect(answer.get_by_test_id("answer-text")).not_to_have_text("")
    models = page.get_by_test_id("answer-model").all_inner_texts()
    assert models[0] == lab.base_name and models[1].startswith("run ")
    assert page.evaluate("window.__pushes") > 0

    # A second message keeps each column's history, in the same conversation.
    page.locator("textarea[name=content]").fill("And goodbye?")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("turn")).to_have_count(2)
    last = page.get_by_test_id("turn").nth(1)
    for column in range(2):
        answer = last.locator(f"[data-testid=answer][data-column='{column}']")
        expect(answer).to_have_attribute("data-status", "done", timeout=240_000)

    # Another user: the conversation is a 404 and its websocket is refused.
    conversation_path = page.url.removeprefix(lab.url)
    intruder = browser.new_context()
    other = intruder.new_page()
    other.goto(lab.url + "/accounts/login/")
    other.locator("input[name=login]").fill("other@example.com")
    other.locator("input[name=password]").fill("a-Long-test-passw0rd")
    other.locator("main button[type=submit]").click()
    expect(other).to_have_url(re.compile(r"/projects/$"))
    assert other.goto(lab.url + conversation_path).status == 404
    intruder.close()
    context.close()
    assert not violations, violations
