"""Generating a dataset from templates on the project's page: preview, generate, errors."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from projects.models import Dataset
from tests.factories import make_base_model, make_project

pytestmark = pytest.mark.django_db

RECIPE = {
    "name": "Capitals",
    "instruction": "What is the capital of {country}?",
    "input": "",
    "output": '{{"capital": "{capital}"}}',
    "table": "country,capital\nFrance,Paris\nJapan,Tokyo\nPeru,Lima\nChad,N'Djamena",
    "lists": "",
    "rows": 4,
    "seed": 3,
}


@pytest.fixture
def project(user):
    return make_project(owner=user, name="Synthetic")


def url(project):
    return reverse("projects:dataset_synthetic", args=[project.pk])


def test_the_page_starts_from_a_working_example(owner_client, project):
    page = owner_client.get(url(project)).content.decode()
    assert "{country}" in page and 'data-testid="recipe-form"' in page


def test_preview_shows_rows_and_creates_nothing(owner_client, project, htmx_headers):
    response = owner_client.post(url(project), {**RECIPE, "preview": "1"}, **htmx_headers)
    html = response.content.decode()
    assert html.count('data-testid="preview-row"') == 4
    assert "capital of Japan" in html or "capital of France" in html
    assert Dataset.objects.count() == 0


def test_generate_makes_a_normal_dataset_with_a_note(owner_client, project, htmx_headers, broker):
    make_base_model()  # statistics are computed with a model's tokenizer
    response = owner_client.post(url(project), RECIPE, **htmx_headers)
    dataset = Dataset.objects.get()
    assert response["HX-Redirect"] == dataset.get_absolute_url()
    assert dataset.row_count == 4 and dataset.shape == "alpaca" and dataset.version == 1
    assert "Generated from templates: 4 rows, seed 3." in dataset.description
    rows = [json.loads(line) for line in Path(dataset.file.path).read_text().splitlines()]
    assert {json.loads(r["output"])["capital"] for r in rows} == {
        "Paris",
        "Tokyo",
        "Lima",
        "N'Djamena",
    }
    assert dataset.stats.exists()  # statistics are asked for, as for an upload


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"output": "{town}"}, "unknown slot {town}"),
        ({"rows": 50}, "only 4 different rows"),
        ({"rows": 10**9}, "less than or equal to"),
    ],
)
def test_bad_recipes_get_a_clear_message_and_create_nothing(
    owner_client, project, changes, message
):
    response = owner_client.post(url(project), {**RECIPE, **changes})
    assert message in response.content.decode()
    assert Dataset.objects.count() == 0


def test_the_quota_applies(owner_client, project, user):
    user.storage_quota_mb = 0
    user.save(update_fields=["storage_quota_mb"])
    response = owner_client.post(url(project), RECIPE)
    assert "storage quota" in response.content.decode()
    assert Dataset.objects.count() == 0
    assert not any((Path(settings.MEDIA_ROOT) / "tmp").glob("*"))  # the file went too


def test_another_user_gets_404_and_anonymous_goes_to_login(other_client, client, project):
    assert other_client.get(url(project)).status_code == 404
    assert other_client.post(url(project), RECIPE).status_code == 404
    response = client.get(url(project))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Dataset.objects.count() == 0
