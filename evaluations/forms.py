from django import forms
from django.utils.translation import gettext_lazy as _

from training.engine.evaluate.metrics import DEFAULT_METRICS, METRICS, MetricError, compile_regex


class EvaluationForm(forms.Form):
    limit = forms.IntegerField(
        label=_("Validation examples (at most)"), min_value=1, max_value=5000, initial=100
    )
    metrics = forms.MultipleChoiceField(
        label=_("Metrics"),
        choices=[(m.name, m.label) for m in METRICS.values()],
        initial=[*DEFAULT_METRICS, "loss"],
        widget=forms.CheckboxSelectMultiple,
    )
    ignore_case = forms.BooleanField(label=_("Ignore case (exact match, contains)"), required=False)
    regex = forms.CharField(label=_("Regex the output must match"), max_length=500, required=False)
    eval_file = forms.FileField(
        label=_("Eval file (optional)"),
        required=False,
        help_text=_(
            "JSONL, JSON, CSV or text in any dataset shape, every row with an expected "
            "output; empty: the run's validation rows"
        ),
    )
    max_new_tokens = forms.IntegerField(
        label=_("Max new tokens"), min_value=1, max_value=1024, initial=64
    )

    def clean(self):
        cleaned = super().clean()
        if "regex" in cleaned.get("metrics", []):
            try:
                compile_regex(cleaned.get("regex", ""))
            except MetricError as exc:
                self.add_error("regex", str(exc))
        return cleaned
