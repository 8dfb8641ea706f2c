"""``{% export_panel run %}``: the run page's export list, without the training app's
views knowing about exports."""

from django import template

from exports.events import panel_context

register = template.Library()


@register.inclusion_tag("exports/_panel.html", takes_context=True)
def export_panel(context, run):
    return {
        **panel_context(run),
        "csrf_token": context.get("csrf_token"),
        "messages": [],
        "request": context.get("request"),
    }
