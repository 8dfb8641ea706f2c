import os

import pytest
from django.test import Client

from tests.factories import make_user


@pytest.fixture(autouse=True)
def _lab_settings(settings, tmp_path):
    # Tests never write into the real data directory, and need no collectstatic.
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "media"
    settings.RUNS_DIR = tmp_path / "data" / "runs"
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit counters live in the cache; one test's failures must not lock out the next.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def user(db):
    return make_user("owner@example.com")


@pytest.fixture
def other_user(db):
    return make_user("intruder@example.com")


@pytest.fixture
def owner_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def other_client(other_user) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


@pytest.fixture
def htmx_headers() -> dict:
    return {"HTTP_HX_REQUEST": "true"}


def pytest_collection_modifyitems(config, items):
    # Browser tests need Debian's chromium; outside CI they skip when it is absent,
    # in CI a missing browser is a failure (the browser fixture raises).
    if os.path.exists("/usr/bin/chromium") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="chromium not installed (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
