"""The user journey through real parts: browser → daphne → Redis → worker → websocket → browser."""

import json
import os
import re
import zipfile

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import watch_csp
from tests.schemas import validate_run
from training.engine.data.samples import write_sample_dataset
from training.engine.models.store import DEFAULT_MODEL_NAME as MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

WS_PROBE = """async (path) => await new Promise((resolve) => {
  const seen = [];
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.onopen = () => seen.push("open");
  ws.onmessage = (event) => { seen.push(event.data); if (seen.length >= 2) ws.close(); };
  ws.onclose = (event) => resolve({seen, code: event.code});
  setTimeout(() => ws.close(), 4000);
})"""


def log_in(page, url, email, password):
    page.goto(url + "/accounts/login/")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/projects/$"))


def test_the_journey_from_upload_to_chat_and_adapter(browser, live_lab, tmp_path):
    url = live_lab["url"]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    violations = watch_csp(context)
    context.set_default_timeout(30_000)
    page = context.new_page()
    log_in(page, url, live_lab["email"], live_lab["password"])

    page.locator("#create-project input[name=name]").fill("JSON answers")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_test_id("project-name")).to_have_text("JSON answers", timeout=30_000)

    # A malformed line is refused with its number; then the real file goes in.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": 3}\n')
    page.locator("#upload-form input[type=file]").set_input_files(str(bad))
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.get_by_test_id("upload-errors")).to_contain_text("line 2", timeout=30_000)
    data = write_sample_dataset(tmp_path / "answers.jsonl", n=64)
    page.locator("#upload-form input[type=file]").set_input_files(str(data))
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.get_by_test_id("row-count")).to_have_text("64", timeout=30_000)

    # A quarter of the rows held out for validation.
    page.get_by_text("Change the split").click()
    page.locator("[data-testid=split-form] input[name=val_percent]").fill("25")
    page.get_by_role("button", name="Save split").click()
    expect(page.get_by_test_id("split-summary")).to_contain_text(
        "48 training rows, 16 validation rows", timeout=30_000
    )

    page.get_by_role("button", name="Train on this").click()
    page.locator("input[name=eval_every]").fill("3")
    page.locator("input[name=max_steps]").fill("6")
    page.locator("input[name=batch_size]").fill("2")
    page.locator("input[name=max_seq_len]").fill("96")
    page.get_by_test_id("start-run").click()
    expect(page.get_by_test_id("run-status")).to_be_visible(timeout=30_000)
    run_path = re.search(r"/runs/\d+/", page.url).group(0)

    # Progress arrives over the websocket: the bar moves without a reload.
    expect(page.locator("[data-testid=progress]:not([data-step='0'])")).to_be_visible(
        timeout=240_000
    )
    expect(page.get_by_test_id("loss")).not_to_have_text("\u2013", timeout=30_000)
    expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=300_000)
    # The validation curve: the base model, then steps 3 and 6, pushed as they came.
    expect(page.get_by_test_id("eval-curve")).to_have_attribute("data-points", "3")
    expect(page.get_by_test_id("eval-loss")).not_to_have_text("\u2013")
    expect(page.get_by_test_id("base-eval-loss")).to_be_visible()

    # The database is the truth: the JSON the page's data comes from has every step once.
    result = page.request.get(url + run_path.rstrip("/") + ".json").json()
    validate_run(result)  # the committed JSON Schema (docs/schema/run.schema.json)
    assert result["status"] == "completed"
    assert [m["step"] for m in result["metrics"]] == [1, 2, 3, 4, 5, 6]
    evaluated = [m["step"] for m in result["metrics"] if m["eval_loss"] is not None]
    assert evaluated == [3, 6] and result["eval_loss"] < result["base_eval_loss"]
    assert result["first_metric"] is not None

    page.locator("textarea[name=prompt]").fill("What is the capital of Thailand?")
    page.get_by_test_id("send-chat").click()
    expect(page.get_by_test_id("tuned-answer")).to_be_visible(timeout=180_000)
    assert page.get_by_test_id("base-answer").inner_text().strip()
    assert page.get_by_test_id("tuned-answer").inner_text().strip()

    # "Download adapter" goes through the export list: the first click queues the adapter
    # export on the CPU worker; once verified, the same button downloads it.
    page.get_by_test_id("download-adapter").click()
    ready = page.locator("a[data-testid=download-adapter]")
    expect(ready).to_be_visible(timeout=120_000)
    with page.expect_download() as download_info:
        ready.click()
    archive = tmp_path / "adapter.zip"
    download_info.value.save_as(archive)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        config = json.loads(zf.read("adapter_config.json"))
        zf.extractall(tmp_path / "adapter")
    assert "adapter_model.safetensors" in names
    assert config["peft_type"] == "LORA"

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(os.environ["SLMLAB_MODEL_STORE"] + "/" + MODEL)
    tuned = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    assert tuned.peft_config["default"].r == 8
    assert any("lora_A" in name for name, _ in tuned.named_parameters())

    tensorboard = page.request.get(url + run_path + "tensorboard.zip")
    assert tensorboard.status == 200 and tensorboard.body()[:2] == b"PK"

    # An export from the run page: a job on the CPU worker whose end reaches the page
    # over the export list's websocket; then it downloads.
    page.get_by_test_id("export-kind").select_option("adapter")
    page.get_by_test_id("create-export").click()
    done = page.locator("[data-testid=export][data-status=done]")
    expect(done).to_have_count(2, timeout=120_000)
    export_url = done.first.get_by_test_id("download-export").get_attribute("href")
    exported = page.request.get(url + export_url)
    assert exported.status == 200 and exported.body()[:2] == b"PK"

    # Owner's own websocket: accepted, and the first message is the full state.
    probe = page.evaluate(WS_PROBE, "/ws" + run_path)
    assert probe["seen"][0] == "open"
    assert 'data-status="completed"' in probe["seen"][1]

    # Another user: 404 on the page and the download; the websocket is refused.
    intruder = browser.new_context()
    other = intruder.new_page()
    other.goto(url + "/accounts/signup/")
    other.locator("input[name=email]").fill("intruder@example.com")
    other.locator("input[name=password1]").fill("a-Long-test-passw0rd")
    other.locator("input[name=password2]").fill("a-Long-test-passw0rd")
    other.locator("main button[type=submit]").click()
    expect(other).to_have_url(re.compile(r"/projects/$"))
    assert other.request.get(url + run_path).status == 404
    assert other.request.get(url + run_path + "tensorboard.zip").status == 404
    assert other.request.get(url + export_url).status == 404
    refused = other.evaluate(WS_PROBE, "/ws" + run_path)
    assert "open" not in refused["seen"]
    intruder.close()
    context.close()
    assert violations == [], violations


def test_cancel_stops_a_running_run_on_the_worker_and_keeps_its_metrics(browser, live_lab):
    url = live_lab["url"]
    context = browser.new_context()
    violations = watch_csp(context)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, url, live_lab["email"], live_lab["password"])
    page.locator("#create-project input[name=name]").fill("Cancel me")
    page.get_by_role("button", name="Create project").click()
    page.get_by_test_id("add-sample").click()
    page.get_by_role("button", name="Train on this").click()
    page.locator("input[name=max_steps]").fill("500")
    page.locator("input[name=max_seq_len]").fill("64")
    page.get_by_test_id("start-run").click()
    expect(page.locator("[data-testid=progress]:not([data-step='0'])")).to_be_visible(
        timeout=240_000
    )
    page.get_by_test_id("cancel-run").click()
    expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=60_000)

    result = page.request.get(page.url.rstrip("/") + ".json").json()
    steps = [m["step"] for m in result["metrics"]]
    assert result["status"] == "cancelled"
    assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) < 500
    assert result["progress"]["step"] == steps[-1]
    expect(page.get_by_test_id("cancel-run")).to_have_count(0)
    expect(page.get_by_test_id("download-adapter")).to_have_count(0)

    # The worker process reports its heartbeat; operators see it in the admin.
    page.goto(url + "/admin/training/worker/")
    expect(page.locator("#result_list")).to_contain_text("CPU", timeout=30_000)
    expect(page.locator("#result_list img[alt=True]")).to_have_count(1)
    context.close()
    assert violations == [], violations
