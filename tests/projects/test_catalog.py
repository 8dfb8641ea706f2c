import pytest
from django.urls import reverse

from tests.factories import make_base_model

pytestmark = pytest.mark.django_db


def test_the_catalog_lists_the_curated_models_with_estimates(owner_client):
    make_base_model(name="SmolLM2-135M-Instruct")
    page = owner_client.get(reverse("catalog")).content.decode()
    for name in ["SmolLM2", "Qwen2.5", "TinyLlama", "Llama 3.2", "Phi-3", "Gemma 2"]:
        assert name in page
    assert page.count('data-testid="catalog-row"') >= 9
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in page
    assert page.count(">ready<") == 1  # only the bundled model is in the store


def test_qlora_needs_less_than_lora_for_a_big_model(owner_client):
    from projects.catalog_rows import catalog_rows

    phi = next(row for row in catalog_rows("cuda", cpu_bf16=False) if "Phi-3" in row.name)
    assert phi.qlora_mb < phi.lora_mb
    assert phi.inference_mb < phi.lora_mb


def test_the_catalog_needs_a_login(client):
    response = client.get(reverse("catalog"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
