"""A project's runs as a sortable, filterable, paginated table."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import DurationField, ExpressionWrapper, F, QuerySet
from django.db.models.functions import Coalesce, Now

from experiments.scores import with_evaluations
from training.models import Run

PER_PAGE = 25

# What a column sorts by (names in the query string -> ORM expressions).
SORTS = {
    "name": "name",
    "status": "status",
    "model": "base_model__name",
    "dataset": "dataset__name",
    "quantization": "config__quantization",
    "rank": "config__lora_r",
    "lr": "config__learning_rate",
    "steps": "total_steps",
    "loss": "loss",
    "eval_loss": "eval_loss",
    "speed": "tokens_per_second",
    "duration": "duration",
    "created": "created",
}
DEFAULT_SORT = "-created"


@dataclass(frozen=True)
class TableQuery:
    """What the user asked of the table, read from the query string (bad values fall back)."""

    sort: str = DEFAULT_SORT
    status: str = ""
    model: str = ""
    dataset: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params) -> TableQuery:
        sort = params.get("sort", DEFAULT_SORT)
        if sort.lstrip("-") not in SORTS:
            sort = DEFAULT_SORT
        status = params.get("status", "")
        if status not in Run.Status.values:
            status = ""
        try:
            page = max(1, int(params.get("page", 1)))
        except ValueError:
            page = 1
        return cls(
            sort=sort,
            status=status,
            model=params.get("model", "")[:200],
            dataset=params.get("dataset", "")[:200],
            page=page,
        )

    def params(self, **changes) -> str:
        """The query string of this table with ``changes`` (for links and sort headers)."""
        from urllib.parse import urlencode

        values = {
            "sort": self.sort,
            "status": self.status,
            "model": self.model,
            "dataset": self.dataset,
            "page": self.page,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def sort_link(self, column: str) -> str:
        """Sorting by ``column``: ascending first, descending when it already is."""
        ascending = self.sort == column
        return self.params(sort=f"-{column}" if ascending else column, page=1)


def runs_for(project) -> QuerySet[Run]:
    took = ExpressionWrapper(
        Coalesce(F("finished"), Now()) - F("started"), output_field=DurationField()
    )
    runs = project.runs.select_related("base_model", "base_run", "dataset").annotate(duration=took)
    return with_evaluations(runs)


def table_page(project, query: TableQuery) -> Page:
    runs = runs_for(project)
    if query.status:
        runs = runs.filter(status=query.status)
    if query.model:
        runs = runs.filter(base_model__name=query.model)
    if query.dataset:
        runs = runs.filter(dataset__name=query.dataset)
    field = SORTS[query.sort.lstrip("-")]
    descending = query.sort.startswith("-")
    order = F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
    runs = runs.order_by(order, "-pk")
    return Paginator(runs, PER_PAGE).get_page(query.page)


def filter_choices(project) -> dict[str, list[str]]:
    runs = project.runs
    return {
        "statuses": Run.Status.choices,
        "models": sorted(
            set(runs.exclude(base_model=None).values_list("base_model__name", flat=True))
        ),
        "datasets": sorted(set(runs.values_list("dataset__name", flat=True))),
    }
