"""Worker processes import the ML libraries at boot, so jobs starting together on its
threads never race on transformers' first import."""

import subprocess
import sys

import pytest

SCRIPT = """
import threading
from slmlab.worker_boot import import_ml_libraries
import_ml_libraries()
errors = []
def job():
    try:
        from transformers import AutoTokenizer, AutoModelForCausalLM, GenerationConfig  # noqa
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=job) for _ in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
"""


@pytest.mark.slow
def test_jobs_starting_together_after_boot_import_transformers_cleanly():
    # Without the boot import, 3 threads importing at once failed in about half the runs.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr[-2000:]


def test_every_worker_process_runs_the_import_at_boot():
    from django.conf import settings

    assert "slmlab.worker_boot.ImportMLLibraries" in settings.DRAMATIQ_BROKER["MIDDLEWARE"]
