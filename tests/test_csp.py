"""A Content-Security-Policy that allows our own static files only, and templates that
need nothing else (no inline scripts, handlers or style attributes)."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
INLINE = [
    (
        re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I),
        "inline <script>",
    ),
    (re.compile(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", re.I), "inline event handler"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_every_page_says_our_own_files_only(client, owner_client):
    for response in (client.get(reverse("account_login")), owner_client.get("/projects/")):
        policy = _policy(response)
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
        assert policy["connect-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
        assert not [v for values in policy.values() for v in values if "unsafe" in v]


def test_no_template_holds_inline_script_handlers_or_styles():
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern, what in INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(TEMPLATES)}:{line}: {what}")
    assert not found, "\n".join(found)


def test_htmx_is_told_not_to_inject_styles_or_evaluate(client):
    page = client.get(reverse("account_login")).content.decode()
    assert '"includeIndicatorStyles": false' in page
    assert '"allowEval": false' in page
