"""Worker processes import the ML libraries once, on their main thread, at boot.

transformers is a lazy module whose first import is not safe from several threads at
once: two jobs starting together on one worker (a token preview and the statistics of
a just-stored upload on the CPU worker's threads; a chat beside a training run on a GPU
worker) could fail with "cannot import name 'AutoTokenizer' from 'transformers'"
(reproduced: three threads importing it in a fresh process fail about half the time).
Once the package and its auto classes are imported, later imports are safe.

Only worker processes run this hook; the web process never imports these libraries.
"""

from __future__ import annotations

import logging
import time

import dramatiq

logger = logging.getLogger(__name__)


def import_ml_libraries() -> None:
    import torch  # noqa: F401
    import transformers

    for name in ("AutoTokenizer", "AutoModelForCausalLM", "AutoConfig", "GenerationConfig"):
        getattr(transformers, name)
    import peft  # noqa: F401


class ImportMLLibraries(dramatiq.Middleware):
    def after_process_boot(self, broker) -> None:
        started = time.monotonic()
        import_ml_libraries()
        logger.info("ML libraries imported in %.1f s", time.monotonic() - started)
