"""Pushes to the Hugging Face Hub on the CPU worker, with the user's own token.

A new repository is created (public or private, as the user chose) and the export's
files are committed with a generated model card in one commit, through
``huggingface_hub`` (LFS for the weights). Every failure the user can act on gets its
own message: a bad token (401), a token that may not write there (403), a repository
that already exists (409), the connection lost on the way (then pushing again to the
same name goes into the repository the failed push created).
"""

from __future__ import annotations

import logging

from exports import events, secrets
from exports.models import Export, HubPush, HubToken
from slmlab.jobs import JobStatus
from training.engine.export.card import CardFacts, model_card
from training.engine.models.store import DEFAULT_MODEL_NAME

logger = logging.getLogger(__name__)
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def card_facts(push: HubPush) -> CardFacts:
    export: Export = push.export
    run = export.run
    dataset, base = run.dataset, run.base_model
    if base is None:  # pretrained in the lab, or a fine-tune of such a model: no Hub id
        base_id, licence = "", ""
    else:
        base_id = hub_id_of(base)
        licence = base.licence or ("apache-2.0" if base_id == BUNDLED_HUB_ID else "")
    return CardFacts(
        repo_id=push.repo_id,
        kind=export.kind,
        export_label=export.label,
        base_model=base_id,
        license=licence,
        dataset_name=dataset.name,
        dataset_rows=dataset.row_count,
        dataset_shape=dataset.shape,
        dataset_template=dataset.template,
        run_name=run.name,
        config=run.config,
        steps=run.step,
        losses=list(run.metrics.values_list("loss", flat=True)),
        base_eval_loss=run.base_eval_loss,
        eval_loss=run.eval_loss,
        evaluation=evaluation_facts(run),
        verification=export.verification,
        pretrained=run.is_pretraining,
        base_name=str(run.base_name),
    )


def hub_id_of(base) -> str:
    """The Hub repository a store model came from, which the card's ``base_model`` must
    name (the Hub refuses a card whose ``base_model`` is not a model id); a model
    imported from a local folder has none, and the card names it only in its text."""
    if base.name == DEFAULT_MODEL_NAME:
        return BUNDLED_HUB_ID
    if base.source == base.Source.HUB:
        download = base.downloads.exclude(repo_id="").order_by("-created").first()
        if download is not None:
            return download.repo_id
    return ""


def evaluation_facts(run) -> dict[str, str]:
    """The run's newest finished evaluation (``evaluations``, by the reverse relation), one
    line per metric: base and tuned scores with the paired test."""
    latest = run.evaluations.filter(status=JobStatus.DONE).order_by("-finished").first()
    if latest is None or not latest.summary.get("metrics"):
        return {}
    facts = {"validation examples": str(latest.summary.get("examples", 0))}
    for metric in latest.summary["metrics"]:
        text = f"base {metric['base']['mean']:.3g}"
        if metric.get("tuned"):
            text += f", tuned {metric['tuned']['mean']:.3g}"
        test = metric.get("test")
        if test:
            significant = "significant" if test["significant"] else "not significant"
            text += f" (p = {test['p_value']:.2g}, {significant})"
        facts[metric["label"]] = text
    return facts


def _transport_error(exc: BaseException) -> bool:
    import httpx2

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx2.TransportError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def explain(exc: BaseException, repo_id: str) -> str:
    """The message the owner reads for a failed push."""
    from huggingface_hub.errors import HfHubHTTPError

    status = None
    seen: BaseException | None = exc
    while seen is not None and status is None:
        if isinstance(seen, HfHubHTTPError) and seen.response is not None:
            status = seen.response.status_code
        seen = seen.__cause__ or seen.__context__
    namespace = repo_id.split("/")[0]
    if status == 401:
        return (
            "The Hub refused your token (401): it is invalid or was revoked. "
            "Save a new write token and push again."
        )
    if status == 403:
        return (
            f"Your token may not create or write repositories in {namespace!r} (403): use a "
            "token with write access, or a repository in your own namespace."
        )
    if status == 409:
        return (
            f"The repository {repo_id} already exists on the Hub (409): choose another name "
            "(the lab never overwrites a repository)."
        )
    if _transport_error(exc):
        return (
            "The connection to the Hub was lost during the upload; nothing was committed. "
            "Push again when the connection is back."
        )
    return f"The push failed: {type(exc).__name__}: {exc}"


def push(push_id: int) -> None:
    """Claim one push and do it; a second delivery does nothing."""
    from huggingface_hub import CommitOperationAdd, HfApi

    job = (
        HubPush.objects.select_related(
            "export__run__dataset", "export__run__base_model", "export__run__base_run"
        )
        .filter(pk=push_id)
        .first()
    )
    if job is None or not job.claim():
        return
    export = job.export
    events.publish(export.run_id)
    try:
        stored = HubToken.objects.filter(owner_id=job.owner_id).first()
        if stored is None:
            raise PermissionError("no Hub token saved")
        api = HfApi(token=secrets.decrypt(stored.encrypted))
        readme = model_card(card_facts(job)).encode("utf-8")
        operations = [CommitOperationAdd("README.md", readme)] + [
            CommitOperationAdd(path.relative_to(export.folder).as_posix(), str(path))
            for path in sorted(export.folder.rglob("*"))
            if path.is_file() and path.name != "README.md"
        ]
        # A repository an earlier push of this owner created and then failed to commit
        # to (the connection was lost) is theirs to push into again; any other existing
        # repository is refused (409).
        created_before = (
            HubPush.objects.filter(
                owner_id=job.owner_id, repo_id=job.repo_id, status=JobStatus.FAILED
            )
            .exclude(url="")
            .exists()
        )
        repo = api.create_repo(job.repo_id, private=job.private, exist_ok=created_before)
        job.report(url=str(repo))
        api.create_commit(
            repo_id=job.repo_id,
            operations=operations,
            commit_message=f"{export.label} from SLM Lab run {export.run.name}",
        )
    except secrets.SecretUnreadable as exc:
        job.fail(str(exc))
    except PermissionError:
        job.fail("Save your Hugging Face token first.")
    except Exception as exc:
        logger.warning("push %s to %s failed: %r", push_id, job.repo_id, exc)
        job.fail(explain(exc, job.repo_id))
    else:
        job.finish(url=str(repo))
    events.publish(export.run_id)
