"""The worker's side of deleting an account: wait for its runs to stop, then remove every
file and every row it owns (projects with their datasets and runs, uploads on their way,
exports, conversations, API keys) and the user."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from django.conf import settings

from accounts.models import User
from projects.datasets import delete_project
from training.models import Run

logger = logging.getLogger(__name__)

# A run asked to stop checks within a second and checkpoints; a stuck worker is given
# this long before its run's folder is removed under it (it then finds the run gone).
WAIT_FOR_RUNS_S = 600


def erase(user_id: int, wait_s: float = WAIT_FOR_RUNS_S, poll_s: float = 1.0) -> None:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return  # erased already (a duplicate delivery)
    if user.is_active:
        logger.warning("user %s is active again: not erasing", user_id)
        return
    deadline = time.monotonic() + wait_s
    while user.runs.filter(status=Run.Status.RUNNING).exists():
        if time.monotonic() > deadline:
            logger.warning("user %s: runs still running after %.0f s; erasing", user_id, wait_s)
            break
        time.sleep(poll_s)
    for project in user.projects.all():
        delete_project(project)  # rows, then their files once committed
    # What is left under the user's own folders (nothing, or debris of a crash).
    for folder in user_folders(user):
        shutil.rmtree(folder, ignore_errors=True)
    user.delete()  # the rest cascades: keys, conversations, tokens, sessions' owner
    logger.info("erased user %s", user_id)


def user_folders(user: User) -> list[Path]:
    """Folders kept per user: datasets under MEDIA_ROOT, and the data directory's own
    (trained tokenizers)."""
    roots = {Path(settings.MEDIA_ROOT), Path(settings.DATA_DIR)}
    return [path for root in roots for path in root.glob(f"*/u{user.pk}") if path.is_dir()]
