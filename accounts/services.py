"""Deleting an account: every row and every file the user owns."""

from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest

from accounts.actors import erase_account
from accounts.models import User
from training.models import Run
from training.services import cancel_run


def delete_account(request: HttpRequest, user: User) -> None:
    """Lock the account at once, stop its work, and leave the erasure to a worker (which
    waits for running runs to stop before it removes their folders)."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        for run in user.runs.filter(status__in=[*Run.WAITING, Run.Status.RUNNING]):
            cancel_run(run)
        transaction.on_commit(lambda: erase_account.send(user.pk))
    logout(request)
