import re

import pytest
from playwright.sync_api import expect

from projects.models import Project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_up_creates_a_project_and_sees_it_listed(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_role("link", name="Sign up").first.click()
    page.locator("input[name=email]").fill("student@example.com")
    page.locator("input[name=password1]").fill("a-Long-test-passw0rd")
    page.locator("input[name=password2]").fill("a-Long-test-passw0rd")
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/projects/$"))
    expect(page.get_by_text("No projects yet.")).to_be_visible()

    # An invalid name re-renders the form in place with the error.
    page.locator("#create-project input[name=name]").fill("   ")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#create-project .errorlist")).to_be_visible()

    page.locator("#create-project input[name=name]").fill("My first fine-tune")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_test_id("project-name")).to_have_text("My first fine-tune")

    # Inline rename through HTMX, then back to the list.
    page.get_by_role("button", name="Rename").click()
    page.locator("#project-header input[name=name]").fill("Haiku bot")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("project-name")).to_have_text("Haiku bot")
    page.get_by_role("link", name="All projects").click()
    expect(page.get_by_test_id("project-card")).to_have_count(1)
    expect(page.get_by_test_id("project-card")).to_contain_text("Haiku bot")
    assert Project.objects.get().name == "Haiku bot"
