from django import template

from experiments import scores

register = template.Library()


@register.filter
def sort_link(query, column: str) -> str:
    """The table's query string sorted by ``column`` (ascending, or descending if it is)."""
    return query.sort_link(column)


@register.filter
def page_link(query, number: int) -> str:
    return query.params(page=number)


@register.filter
def item(values, index: int):
    return values[index]


@register.filter
def headline(run):
    """The run's headline evaluation score (see experiments.scores.headline)."""
    return scores.headline(run)
