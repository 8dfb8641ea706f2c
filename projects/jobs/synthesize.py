"""Datasets a model writes, on the GPU worker: the glue between SyntheticGeneration rows,
the engine's model recipes and the lab's dataset store. All or nothing: a failure, a
cancel or a check that drops every row leaves no dataset and no file."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

from projects import datasets, events
from projects.jobs.check import compute_new_statistics
from projects.models import SyntheticGeneration
from training.engine.data import model_recipe, synthetic
from training.engine.data.records import DatasetError, DataSpec
from training.engine.inference import synthesize
from training.engine.inference.chat import ChatModel

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.9


def recipe_of(data: dict) -> model_recipe.ModelRecipe:
    """The recipe as SyntheticGeneration.recipe stores it (the form's ``recipe_data``)."""
    fields = {k: v for k, v in data.items() if k != "check"}
    return model_recipe.ModelRecipe(**fields, check=model_recipe.OutputCheck(**data["check"]))


def _subject(item: SyntheticGeneration) -> tuple[Path, Path | None, str, str]:
    """Model folder, adapter folder and the prompt template of the chosen model; a run is
    asked the way it was trained (its dataset's template), a store model in its chat."""
    gone = LookupError(f"the model {item.model_label} is no longer available")
    if item.model_ref.startswith("run-"):  # the Playground's name of a run's model
        run = item.run
        if run is not None and run.has_model:  # pretrained in the lab: its own weights
            return run.model_dir, None, "model", ""
        if run is None or not run.has_adapter:
            raise gone
        return (
            Path(run.base_path),
            run.adapter_dir,
            run.dataset.template,
            run.dataset.custom_template,
        )
    if item.base_model is None:
        raise gone
    return Path(item.base_model.path), None, "model", ""


def run_generation(generation_id: int) -> None:
    """Claim one generation and do it; a second delivery does nothing."""
    item = (
        SyntheticGeneration.objects.select_related(
            "project__owner", "owner", "base_model", "run__base_model", "run__dataset"
        )
        .filter(pk=generation_id)
        .first()
    )
    if item is None or not item.claim():
        return
    events.publish_generation(item.pk)
    try:
        dataset = _generate(item)
    except synthesize.Cancelled:
        logger.info("generation %s: cancelled while it ran", generation_id)
    except (synthetic.RecipeError, LookupError) as exc:
        item.fail(str(exc))
    except DatasetError as exc:
        item.fail("; ".join(str(p) for p in exc.problems[:5]) or str(exc))
    except Exception as exc:
        logger.exception("generation %s failed", generation_id)
        item.fail(f"{type(exc).__name__}: {exc}")
    else:
        if dataset is not None:
            if not item.finish(result=dataset):
                datasets.delete_dataset(dataset)  # cancelled at the last moment
            else:
                events.publish_generation(item.pk)
                compute_new_statistics(dataset)
                return
    events.publish_generation(item.pk)


def _generate(item: SyntheticGeneration):
    plan = model_recipe.check(recipe_of(item.recipe))
    model_dir, adapter_dir, template, custom = _subject(item)
    chat = ChatModel(model_dir, adapter_dir, template=template, custom_template=custom)
    last = [0.0]

    def on_progress(tally: model_recipe.Tally) -> bool:
        alive = item.report(
            generated=tally.generated,
            kept=tally.kept,
            duplicates=tally.duplicates,
            failed_check=tally.failed_check,
        )
        now = time.monotonic()
        if alive and (now - last[0] >= PROGRESS_EVERY_S or tally.generated == item.rows_total):
            last[0] = now
            events.publish_generation(item.pk)
        return alive

    keeper = synthesize.synthesize(
        chat.model,
        chat.tokenizer,
        plan,
        template,
        custom,
        on_progress=on_progress,
        batch_size=synthesize.BATCH_SIZE,
        context_length=item.run.context_length if item.run else item.base_model.context_length,
    )
    tally = keeper.tally
    if not keeper.rows:
        item.fail(_all_dropped(plan, tally))
        return None
    path = datasets.tmp_dir() / f"synthetic-{uuid.uuid4().hex}.jsonl"
    synthetic.write_jsonl(keeper.rows, path)
    dataset = datasets.store_dataset(item.project, path, item.name, DataSpec(), check_quota=True)
    dataset.description = model_recipe.describe(plan, item.model_label, tally)[:2000]
    dataset.save(update_fields=["description"])
    return dataset


def _all_dropped(plan: model_recipe.Plan, tally: model_recipe.Tally) -> str:
    check = plan.recipe.check.describe()
    return (
        f"Every one of the {tally.generated:,} generated rows was dropped "
        f"({tally.failed_check:,} empty or failing the check “{check}”, "
        f"{tally.duplicates:,} duplicates), so no dataset was made. Loosen the check, "
        "give seed examples of the format wanted, or allow more new tokens."
    )
