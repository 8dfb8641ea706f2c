import pytest

from projects.models import Dataset
from tests.factories import PASSWORD, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DROP = """([selector, name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "text/csv"}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}"""


def log_in(page, user):
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()


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
