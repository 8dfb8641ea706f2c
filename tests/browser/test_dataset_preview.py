import pytest
from playwright.sync_api import expect

from projects.models import Dataset
from tests.factories import PASSWORD, make_base_model, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DROP = """([selector, name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "text/csv"}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}"""
CSV = "question,answer,topic\nWhat is 2 + 2?,4,maths\nName a colour,red,art\n"


def log_in(page, user):
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()


def test_a_dropped_csv_is_recognised_and_its_template_previewed_live(page, bundled_model_dir):
    make_base_model(path=str(bundled_model_dir))
    user = make_user("previewer@example.com")
    project = make_project(owner=user, name="Preview")
    log_in(page, user)
    page.goto(project.get_absolute_url())

    page.evaluate(DROP, ["[data-testid=dropzone]", "quiz.csv", CSV])
    page.get_by_role("button", name="Upload dataset").click()

    expect(page.get_by_test_id("row-count")).to_have_text("2", timeout=15_000)
    expect(page.get_by_test_id("dataset-shape")).to_have_text("prompt / completion", timeout=5_000)
    preview = page.get_by_test_id("token-preview")
    expect(preview.locator(".tok-trained.tok-eos").first).to_be_visible(timeout=15_000)
    expect(preview.locator(".tok-masked").first).to_be_visible(timeout=5_000)

    # Editing the template updates the preview without saving anything.
    page.locator("select[name=template]").select_option("custom")
    page.locator("textarea[name=custom_template]").fill("")
    page.locator("textarea[name=custom_template]").press_sequentially("[{nope}] {output}")
    expect(page.get_by_test_id("preview-errors")).to_contain_text(
        "unknown placeholder {nope}", timeout=10_000
    )
    page.locator("textarea[name=custom_template]").fill("[{topic}] Q: {prompt} A: {output}")
    expect(preview.locator(".token-sample").first).to_contain_text("[maths] Q:", timeout=10_000)
    expect(preview.locator(".tok-trained").first).to_have_text("4", timeout=5_000)
    assert Dataset.objects.get().template == "model"

    # Changing the shape offers that shape's columns; saving checks every row.
    page.get_by_test_id("shape").select_option("text")
    expect(page.locator("select[name=map_text]")).to_be_visible(timeout=10_000)
    page.locator("select[name=map_text]").select_option("question")
    page.get_by_test_id("save-settings").click()
    expect(page.get_by_test_id("dataset-shape")).to_have_text("plain text", timeout=15_000)
    dataset = Dataset.objects.get()
    assert (dataset.shape, dataset.mapping) == ("text", {"text": "question"})


def test_a_file_over_the_limit_is_refused_before_it_is_sent(page, settings):
    settings.DATASET_MAX_UPLOAD_MB = 1
    user = make_user("big@example.com")
    project = make_project(owner=user, name="Big")
    log_in(page, user)
    page.goto(project.get_absolute_url())
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "upload" in r.url else None)

    page.evaluate(DROP, ["[data-testid=dropzone]", "big.txt", "x" * (2 * 2**20)])
    page.get_by_role("button", name="Upload dataset").click()

    message = page.locator("input[type=file]").evaluate("input => input.validationMessage")
    assert message == "The file is 2.0 MB; the limit is 1 MB."
    page.wait_for_timeout(300)
    assert requests == [] and not Dataset.objects.exists()
