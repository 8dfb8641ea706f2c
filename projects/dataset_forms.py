"""Forms of the dataset page: details, statistics, validation split, replacement file."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from projects.forms import UPLOAD_EXTENSIONS, check_extension
from projects.models import BaseModel, Dataset
from training.engine.data.formats import SUFFIXES

MAX_VAL_PERCENT = 50


class DatasetDetailsForm(forms.ModelForm):
    """Name and description: not content, so editable even once a run used the dataset."""

    class Meta:
        model = Dataset
        fields = ["name", "description", "delete_after_training"]
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
        label=_("Or a separate validation file"),
        required=False,
        help_text=_(
            "In the dataset's own format, read like it; when given, it is the validation set "
            "and the share above is ignored."
        ),
    )

    def __init__(self, *args, dataset: Dataset, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read with the dataset's own format, shape and mapping: it must be the same format.
        self.extensions = SUFFIXES[dataset.file_format]
        self.fields["validation_file"].widget.attrs["accept"] = ",".join(self.extensions)
        # static/js/app.js refuses a bigger file before sending it; the server checks too.
        self.fields["validation_file"].widget.attrs["data-max-mb"] = settings.DATASET_MAX_UPLOAD_MB

    def clean_validation_file(self):
        upload = self.cleaned_data.get("validation_file")
        return check_extension(upload, self.extensions) if upload else None


class ReplaceFileForm(forms.Form):
    file = forms.FileField(
        label=_("Replacement file"),
        help_text=_("Any supported format; its shape is recognised like an upload's."),
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_EXTENSIONS)}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["data-max-mb"] = settings.DATASET_MAX_UPLOAD_MB

    def clean_file(self):
        return check_extension(self.cleaned_data["file"])
