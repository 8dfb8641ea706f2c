"""The Help pages: the first fine-tune with its screenshots, and the glossary's anchors."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from slmlab.glossary import GROUPS, TERMS
from slmlab.help import SCREENSHOTS

pytestmark = pytest.mark.django_db

STATIC = Path(__file__).resolve().parent.parent / "static"

# Anchors the forms' help links to (the run form's Advanced section among them).
FORM_TERMS = [
    "qlora", "nf4", "rank", "alpha", "accumulation", "warmup", "learning-rate", "epoch",
    "lora", "dropout", "scheduler", "optimizer", "precision", "gradient-checkpointing",
    "validation-loss", "perplexity", "rouge-l", "exact-match", "gguf", "merged", "adapter",
    "template", "adamw", "adamw-8bit", "paged-adamw", "sgd", "weight-decay", "max-grad-norm",
    "rslora", "dora", "compute-dtype", "loss-on-answers", "batch-size", "max-seq-len",
    "max-steps", "target-modules", "double-quantization", "seed", "temperature", "top-p",
    "max-new-tokens", "contains", "valid-json", "json-equal", "regex", "output-length",
    "gguf-types", "modelfile", "lora-embeddings", "validation-split", "eval-set",
]  # fmt: skip


def test_the_help_page_is_in_the_top_navigation_for_everyone(client, owner_client):
    for who in (client, owner_client):
        page = who.get(reverse("help"))
        assert page.status_code == 200
        assert f'href="{reverse("help")}" data-testid="help-link"' in page.content.decode()
    projects = owner_client.get(reverse("projects:list")).content.decode()
    assert 'data-testid="help-link"' in projects


def test_the_first_fine_tune_shows_a_screenshot_of_every_step_and_they_exist(client):
    page = client.get(reverse("help")).content.decode()
    shown = re.findall(r'src="/static/help/([^"]+)"', page)
    assert shown == [f"{name}.jpg" for name in SCREENSHOTS]
    for name in shown:
        assert (STATIC / "help" / name).stat().st_size > 5_000, name


def test_the_glossary_has_an_anchor_for_every_term_the_forms_use(client):
    page = client.get(reverse("glossary")).content.decode()
    anchors = re.findall(r'<dt id="([^"]+)"', page)
    assert len(anchors) == len(set(anchors)) == len(TERMS)
    missing = [slug for slug in FORM_TERMS if slug not in anchors]
    assert not missing, missing
    for group in GROUPS:
        for term in group.terms:
            assert all(slug in TERMS for slug in term.see), term.slug


def test_every_glossary_link_of_the_help_page_lands_on_an_entry(client):
    page = client.get(reverse("help")).content.decode()
    linked = set(re.findall(r'href="/help/glossary/#([^"]+)"', page))
    assert linked and linked <= set(TERMS), linked - set(TERMS)


def test_the_help_pages_are_in_korean_too(client):
    client.post(reverse("set_language"), {"language": "ko", "next": "/help/"})
    help_page = client.get(reverse("help")).content.decode()
    assert "첫 미세 조정" in help_page
    glossary = client.get(reverse("glossary")).content.decode()
    assert "용어집" in glossary and "학습률" in glossary
    assert "How big a step the optimizer takes" not in glossary


def test_every_run_form_field_links_to_a_glossary_entry_that_exists(owner_client, user):
    from tests.factories import make_project
    from training.forms import GLOSSARY, GLOSSARY_URL

    assert sorted(set(GLOSSARY.values()) - set(TERMS)) == []
    project = make_project(owner=user)
    page = owner_client.get(reverse("training:new", args=[project.pk])).content.decode()
    linked = set(re.findall(re.escape(GLOSSARY_URL) + r"#([\w-]+)", page))
    assert set(GLOSSARY.values()) - linked == set()
    assert linked <= set(TERMS)
