"""An evaluation's uploaded eval file goes with it, however the row goes: on its own, or
cascading from its run, project, dataset, model or owner (Django never deletes the
file of a FileField)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from evaluations.models import Evaluation


@receiver(post_delete, sender=Evaluation, dispatch_uid="evaluations-delete-eval-file")
def delete_eval_file(sender, instance: Evaluation, using: str, **kwargs) -> None:
    if not instance.eval_file:
        return
    storage, name = instance.eval_file.storage, instance.eval_file.name
    # After commit: a rolled-back delete keeps its row, so it keeps its file.
    transaction.on_commit(lambda: storage.delete(name), using=using)
