"""The Help pages: the first fine-tune step by step, and the glossary the forms link to.

Public pages (they hold nothing of any user); the screenshots in ``static/help/`` are
taken by ``tests/browser/test_help_screenshots.py``, which regenerates them.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from slmlab.glossary import GROUPS, TERMS

# The screenshots of the first fine-tune, in the order of its steps (static/help/<name>.jpg).
SCREENSHOTS = (
    "1-project",
    "2-dataset",
    "3-run-form",
    "4-run",
    "5-evaluation",
    "6-exports",
)


def help_index(request: HttpRequest) -> HttpResponse:
    shots = {name.split("-", 1)[1].replace("-", "_"): f"help/{name}.jpg" for name in SCREENSHOTS}
    return render(request, "help/index.html", {"shots": shots})


def glossary(request: HttpRequest) -> HttpResponse:
    groups = [
        {
            "title": group.title,
            "terms": [
                {"term": term, "see": [(slug, TERMS[slug].name) for slug in term.see]}
                for term in group.terms
            ],
        }
        for group in GROUPS
    ]
    return render(request, "help/glossary.html", {"groups": groups})
