from django import forms
from django.utils.translation import gettext_lazy as _

from evaluations.judging import judge_config
from projects.models import BaseModel, Dataset, Project
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
    temperature = forms.FloatField(
        label=_("Temperature"),
        min_value=0.0,
        max_value=2.0,
        initial=0.0,
        required=False,
        help_text=_("0 = greedy decoding (the same reply every time)"),
    )
    top_p = forms.FloatField(
        label=_("Top-p"),
        min_value=0.01,
        max_value=1.0,
        initial=1.0,
        required=False,
        help_text=_(
            "Sampling only (temperature above 0): keep the smallest set of tokens "
            "whose probabilities add up to this"
        ),
    )
    seed = forms.IntegerField(
        label=_("Seed"),
        min_value=0,
        max_value=2**31 - 1,
        initial=0,
        required=False,
        help_text=_("Sampling only: the same seed gives the same replies"),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if judge_config() is None:  # the LLM judge only where the operator configured one
            field = self.fields["metrics"]
            field.choices = [(n, label) for n, label in field.choices if n != "judge"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("temperature") is None and "temperature" not in self.errors:
            cleaned["temperature"] = 0.0  # empty: greedy
        if cleaned.get("top_p") is None and "top_p" not in self.errors:
            cleaned["top_p"] = 1.0
        if cleaned.get("seed") is None and "seed" not in self.errors:
            cleaned["seed"] = 0
        if "regex" in cleaned.get("metrics", []):
            try:
                compile_regex(cleaned.get("regex", ""))
            except MetricError as exc:
                self.add_error("regex", str(exc))
        return cleaned


class StoreEvaluationForm(EvaluationForm):
    """One store model alone on an eval set of the project: a dataset's validation rows,
    or an uploaded eval file (rendered with the dataset's template when one is chosen,
    else with the model's own chat template)."""

    field_order = ["base_model", "dataset", "eval_file"]

    base_model = forms.ModelChoiceField(
        label=_("Model"), queryset=BaseModel.objects.all(), empty_label=None
    )
    dataset = forms.ModelChoiceField(
        label=_("Dataset"),
        queryset=Dataset.objects.none(),
        required=False,
        empty_label=_("none: an uploaded eval file"),
        help_text=_("Its validation rows are the eval set, rendered with its prompt template"),
    )

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = project.datasets.filter(file_deleted_at__isnull=True)
        self.fields["eval_file"].help_text = _(
            "JSONL, JSON, CSV or text in any dataset shape, every row with an expected "
            "output; empty: the chosen dataset's validation rows"
        )
        default_model = BaseModel.objects.filter(is_default=True).first()
        if default_model:
            self.fields["base_model"].initial = default_model.pk

    def clean(self):
        cleaned = super().clean()
        dataset = cleaned.get("dataset")
        if self.files.get("eval_file"):
            return cleaned  # checked by the view, with the template it will be read with
        if dataset is None:
            self.add_error("dataset", _("Choose a dataset or upload an eval file."))
        elif not dataset.split_sizes()[1]:
            self.add_error(
                "dataset",
                _("This dataset has no validation rows: zero examples to evaluate on."),
            )
        elif dataset.shape == "text":
            self.add_error(
                "dataset",
                _("Plain text has no expected outputs: choose a dataset of prompts and answers."),
            )
        return cleaned


class PretrainedEvaluationForm(StoreEvaluationForm):
    """The model a pretraining run saved, alone, on an eval set of its project (as a store
    model is evaluated: it has no base to be compared with)."""

    field_order = ["dataset", "eval_file"]

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, project=project, **kwargs)
        del self.fields["base_model"]
