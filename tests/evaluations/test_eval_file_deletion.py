"""An uploaded eval file is deleted with its evaluation, however the evaluation goes:
alone, with its project, dataset or model, or with its owner's account."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from accounts.jobs.erase import erase
from accounts.models import User
from evaluations.models import Evaluation
from projects.datasets import delete_dataset, delete_project
from tests.evaluations.test_evaluations import completed_run, post_file
from tests.factories import make_base_model, make_dataset, make_project

pytestmark = pytest.mark.django_db

CSV_EVAL = b"question,answer\nWhat is 2+2?,4\n"


def store_evaluation(owner, dataset=None, model=None) -> tuple[Evaluation, Path]:
    project = dataset.project if dataset else make_project(owner=owner)
    evaluation = Evaluation.objects.create(
        owner=owner,
        project=project,
        base_model=model or make_base_model(),
        dataset=dataset,
        metrics=["exact_match"],
    )
    evaluation.eval_file.save("eval.csv", ContentFile(CSV_EVAL))
    path = Path(evaluation.eval_file.path)
    assert path.is_file() and f"evaluations/u{owner.pk}/" in str(path)
    return evaluation, path


def test_it_goes_with_the_evaluation_and_with_its_runs_project(
    owner_client, user, broker, django_capture_on_commit_callbacks
):
    alone, alone_path = store_evaluation(user)
    with django_capture_on_commit_callbacks(execute=True):
        alone.delete()
    assert not alone_path.exists()

    run = completed_run(user)
    with django_capture_on_commit_callbacks(execute=True):
        post_file(owner_client, run, "eval.csv", CSV_EVAL)
    path = Path(Evaluation.objects.get(run=run).eval_file.path)
    assert path.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        delete_project(run.project)
    assert not Evaluation.objects.exists() and not path.exists()


def test_it_goes_with_the_dataset_or_the_model_it_evaluated(
    user, django_capture_on_commit_callbacks
):
    dataset = make_dataset(make_project(owner=user))
    _, on_dataset = store_evaluation(user, dataset=dataset)
    _, on_model = store_evaluation(user, model=make_base_model(name="other model"))
    with django_capture_on_commit_callbacks(execute=True):
        delete_dataset(dataset)
    assert not on_dataset.exists() and on_model.exists()
    with django_capture_on_commit_callbacks(execute=True):
        make_base_model(name="other model").delete()
    assert not on_model.exists() and not Evaluation.objects.exists()


def test_a_rolled_back_delete_keeps_the_file(user, django_capture_on_commit_callbacks):
    from django.db import transaction

    evaluation, path = store_evaluation(user)
    pk = evaluation.pk
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        evaluation.delete()
        raise RuntimeError("rolled back")
    assert callbacks == [] and path.is_file()
    assert Evaluation.objects.filter(pk=pk).exists()


def test_erasing_an_account_deletes_its_eval_files_and_no_one_elses(
    user, other_user, django_capture_on_commit_callbacks
):
    _, mine = store_evaluation(user)
    _, theirs = store_evaluation(other_user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        erase(user.pk, wait_s=1)
    assert not User.objects.filter(pk=user.pk).exists()
    assert not mine.exists() and not mine.parent.exists()
    assert theirs.is_file() and Evaluation.objects.filter(owner=other_user).count() == 1
