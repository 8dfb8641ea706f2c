"""Forms of the dataset page: details, statistics, validation split, replacement file."""

from django import forms
from django.utils.translation import gettext_lazy as _

from projects.models import BaseModel, Dataset

MAX_VAL_PERCENT = 50


def _jsonl_only(upload):
    if not upload.name.lower().endswith((".jsonl", ".json")):
        raise forms.ValidationError(
            _("Expected a .jsonl file (one JSON object per line); got “%(name)s”."),
            params={"name": upload.name},
        )
    return upload


class DatasetDetailsForm(forms.ModelForm):
    """Name and description: not content, so editable even once a run used the dataset."""

    class Meta:
        model = Dataset
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class StatsForm(forms.Form):
    base_model = forms.ModelChoiceField(
        label=_("Tokenizer of"), queryset=BaseModel.objects.all(), empty_label=None
    )
    max_len = forms.IntegerField(label=_("Max length (tokens)"), min_value=16, max_value=32768)


class SplitForm(forms.Form):
    val_percent = forms.IntegerField(
        label=_("Validation share (%)"), min_value=0, max_value=MAX_VAL_PERCENT, initial=0
    )
    split_seed = forms.IntegerField(label=_("Seed"), min_value=0, max_value=2**31 - 1, initial=0)
    validation_file = forms.FileField(
        label=_("Or a separate validation file (JSONL)"),
        required=False,
        help_text=_("When given, it is the validation set and the share above is ignored."),
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.json,application/jsonl"}),
    )

    def clean_validation_file(self):
        upload = self.cleaned_data.get("validation_file")
        return _jsonl_only(upload) if upload else None


class ReplaceFileForm(forms.Form):
    file = forms.FileField(
        label=_("Replacement JSONL file"),
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.json,application/jsonl"}),
    )

    def clean_file(self):
        return _jsonl_only(self.cleaned_data["file"])
