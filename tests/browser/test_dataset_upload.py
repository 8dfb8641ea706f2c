import pytest
from playwright.sync_api import expect

from projects.models import Dataset
from tests.factories import PASSWORD, make_project, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DROP = """([selector, name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "application/jsonl"}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}"""


def test_a_file_dropped_on_the_page_is_uploaded_and_previewed(page):
    user = make_user("dropper@example.com")
    project = make_project(owner=user, name="Drops")
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main button[type=submit]").click()
    page.goto(project.get_absolute_url())

    page.evaluate(DROP, ["[data-testid=dropzone]", "bad.jsonl", '{"instruction": 1}\n'])
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.get_by_test_id("upload-errors")).to_contain_text("line 1")
    assert Dataset.objects.count() == 0

    rows = '{"instruction": "Name a colour", "output": "{\\"answer\\": \\"red\\"}"}\n' * 3
    page.evaluate(DROP, ["[data-testid=dropzone]", "colours.jsonl", rows])
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.get_by_test_id("row-count")).to_have_text("3")
    expect(page.get_by_test_id("preview")).to_contain_text("Name a colour")
    assert Dataset.objects.get().name == "colours.jsonl"
