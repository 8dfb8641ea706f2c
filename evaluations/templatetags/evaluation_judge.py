"""``{% judge_info as judge %}``: the configured LLM judge for the run page's evaluation
form, without the training app's views knowing about evaluations."""

from django import template

from evaluations.judging import judge_context

register = template.Library()


@register.simple_tag
def judge_info() -> dict | None:
    return judge_context()["judge"]
