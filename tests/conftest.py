import os

import pytest
from django.test import Client

from tests.browser_fixtures import browser, page  # noqa: F401  (shared fixtures)
from tests.factories import make_user


@pytest.fixture(autouse=True)
def _lab_dirs(settings, tmp_path):
    # Each test writes its datasets and runs into its own directory.
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RUNS_DIR = tmp_path / "runs"


@pytest.fixture(scope="session")
def bundled_model_dir():
    """The bundled SmolLM2-135M-Instruct in the test model store (converted once per machine)."""
    from pathlib import Path

    from training.engine.models.store import import_bundled_model

    return import_bundled_model(Path(os.environ["SLMLAB_MODEL_STORE"]))


@pytest.fixture(scope="session")
def tiny_hub_model(bundled_model_dir, tmp_path_factory):
    """A folder laid out like a Hub repository: a tiny Llama in safetensors, the bundled
    tokenizer, and a pickle checkpoint, model code and a subfolder that must not be fetched."""
    from tests.fakehub import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("hub-repo"), bundled_model_dir)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A Hub on 127.0.0.1 that the real huggingface_hub client downloads from (online)."""
    import huggingface_hub.constants as hub_constants

    from tests.fakehub import FakeHub

    with FakeHub() as hub:
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        # Uploads take the LFS protocol the fake Hub speaks, not Xet.
        monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)
        # Derived from HF_ENDPOINT at import time; file URLs are built from it.
        monkeypatch.setattr(
            hub_constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        )
        # A download into a folder copies from the shared cache when a file is there.
        monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        yield hub


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
    # Tests that drive the browser run last: Playwright's sync API keeps an asyncio loop
    # in the main thread for the rest of the session (the browser fixture is session
    # scoped), and after it any test calling async_to_sync in that thread (a websocket
    # push from a job, the relay's fixtures) fails with "cannot use AsyncToSync in the
    # same thread as an async event loop".
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))
    # Browser tests need Debian's chromium; outside CI they skip when it is absent,
    # in CI a missing browser is a failure (the browser fixture raises).
    if os.path.exists("/usr/bin/chromium") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="chromium not installed (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def run_queued(broker):
    """Run the messages waiting on one of the StubBroker's queues, as a worker would (in
    this thread); returns the actor names it ran. Messages are sent after commit, so a
    test sends them inside ``django_capture_on_commit_callbacks(execute=True)``."""
    import json

    def run(queue_name: str) -> list[str]:
        queue = broker.queues.get(queue_name)
        ran = []
        while queue is not None and not queue.empty():
            message = json.loads(queue.get_nowait())
            broker.get_actor(message["actor_name"])(*message["args"], **message["kwargs"])
            ran.append(message["actor_name"])
        return ran

    return run


@pytest.fixture
def broker():
    """The test broker (Dramatiq's StubBroker), empty before and after the test."""
    import dramatiq

    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()
