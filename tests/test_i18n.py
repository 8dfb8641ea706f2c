import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_switches_the_interface_to_korean_and_back(owner_client):
    english = owner_client.get(reverse("projects:list")).content.decode()
    assert "Your projects" in english

    owner_client.post(reverse("set_language"), {"language": "ko", "next": "/projects/"})
    korean = owner_client.get(reverse("projects:list")).content.decode()
    assert 'lang="ko"' in korean
    assert "내 프로젝트" in korean and "프로젝트 만들기" in korean
    assert "Your projects" not in korean

    owner_client.post(reverse("set_language"), {"language": "en", "next": "/projects/"})
    assert "Your projects" in owner_client.get(reverse("projects:list")).content.decode()


def test_every_interface_string_has_a_korean_translation():
    from pathlib import Path

    po = (Path(__file__).resolve().parent.parent / "locale/ko/LC_MESSAGES/django.po").read_text()
    assert '\nmsgstr ""\n\n' not in po.split("\n\n", 1)[1]
    assert "fuzzy" not in po  # a guessed translation is not shown, and often wrong
