"""``{% pretrained_evaluation_form run as eval_form %}``: the form a pretraining run's page
shows to evaluate its model alone, without the training app's views knowing about
evaluations."""

from django import template

from evaluations.forms import PretrainedEvaluationForm

register = template.Library()


@register.simple_tag
def pretrained_evaluation_form(run) -> PretrainedEvaluationForm:
    return PretrainedEvaluationForm(project=run.project)
