"""Settings for the test suite: a throwaway data directory and a shared model store.

Set before slmlab.settings reads the environment. The SQLite test database is a
file so that worker and web processes started by end-to-end tests can share it.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("SLMLAB_DATA_DIR", tempfile.mkdtemp(prefix="slmlab-test-"))
# Each test session converts the bundled model once (~20 s), for real, into its own
# store; the engine tests, the runner tests and the end-to-end lab all share it.
os.environ.setdefault("SLMLAB_MODEL_STORE", str(Path(os.environ["SLMLAB_DATA_DIR"]) / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from slmlab.settings import *  # noqa: F403
from slmlab.settings import DATA_DIR, DATABASES

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
