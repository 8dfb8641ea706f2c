from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from projects.models import BaseModel, Dataset, Project
from training.engine.data.formats import SUFFIXES
from training.engine.data.prompts import DEFAULT_CUSTOM_TEMPLATE
from training.engine.data.records import DatasetError, DataSpec
from training.engine.data.shapes import SHAPE_FIELDS


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {
            "name": forms.TextInput(
                attrs={"placeholder": _("e.g. customer-support-bot"), "autocomplete": "off"}
            ),
            "description": forms.Textarea(
                attrs={"rows": 2, "placeholder": _("What are you trying to teach?")}
            ),
        }

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("Give the project a name."))
        clash = Project.objects.filter(owner=self.owner, name__iexact=name)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(
                _("You already have a project called “%(name)s”."), params={"name": name}
            )
        return name

    def save(self, commit: bool = True) -> Project:
        self.instance.owner = self.owner
        return super().save(commit)


SHAPE_CHOICES = [("", _("Recognise automatically")), *Dataset.Shape.choices]
UPLOAD_EXTENSIONS = tuple(ending for endings in SUFFIXES.values() for ending in endings)


def add_dataset_problems(form: forms.Form, field: str | None, exc: DatasetError) -> None:
    """A dataset's problems as errors of ``field`` (the form's own errors with None), with
    the count of those not listed."""
    for problem in exc.problems:
        form.add_error(field, str(problem))
    if exc.total > len(exc.problems):
        form.add_error(
            field, _("… and %(n)d more problems.") % {"n": exc.total - len(exc.problems)}
        )


def check_extension(upload, extensions: tuple[str, ...] = UPLOAD_EXTENSIONS):
    """Refuse a file whose name does not announce one of ``extensions``."""
    if not upload.name.lower().endswith(extensions):
        *first, last = extensions
        expected = f"{', '.join(first)} {_('or')} {last}" if first else last
        raise forms.ValidationError(
            _("Expected a %(expected)s file; got “%(name)s”."),
            params={"expected": expected, "name": upload.name},
        )
    return upload


def parse_mapping(text: str) -> dict[str, str]:
    """``"prompt=question, completion=answer"`` (commas or new lines) as a dict."""
    mapping: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        if not item.strip():
            continue
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise forms.ValidationError(
                _("Expected field=column pairs such as “prompt=question”; got “%(item)s”."),
                params={"item": item.strip()},
            )
        mapping[target.strip()] = source.strip()
    return mapping


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Dataset file"),
        help_text=_(
            "JSONL, JSON, CSV or TXT: instruction / input / output, chat messages, ShareGPT "
            "conversations, prompt / completion, or plain text."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(UPLOAD_EXTENSIONS)}),
    )
    name = forms.CharField(
        label=_("Name"), max_length=200, required=False, help_text=_("Defaults to the file name.")
    )
    shape = forms.ChoiceField(label=_("Shape"), choices=SHAPE_CHOICES, required=False)
    mapping = forms.CharField(
        label=_("Column mapping"),
        required=False,
        max_length=1000,
        help_text=_(
            "Only where your columns have other names, e.g. prompt=question, completion=answer"
        ),
        widget=forms.TextInput(attrs={"placeholder": "prompt=question, completion=answer"}),
    )
    text_split = forms.ChoiceField(
        label=_("Plain text"), choices=Dataset.TextSplit.choices, initial="line", required=False
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # static/js/app.js refuses a bigger file before sending it; the server checks too.
        self.fields["file"].widget.attrs["data-max-mb"] = settings.DATASET_MAX_UPLOAD_MB

    def clean_file(self):
        return check_extension(self.cleaned_data["file"])

    def clean_text_split(self) -> str:
        return self.cleaned_data["text_split"] or Dataset.TextSplit.LINE

    def clean_mapping(self) -> dict[str, str]:
        return parse_mapping(self.cleaned_data["mapping"])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mapping") and not cleaned.get("shape"):
            self.add_error("shape", _("Choose the shape your column mapping is for."))
        return cleaned

    def dataset_name(self) -> str:
        return self.cleaned_data["name"].strip() or self.cleaned_data["file"].name


class DatasetSettingsForm(forms.Form):
    """Shape, column mapping and prompt template of a stored dataset.

    The mapping fields are those of the chosen shape, so the form is built from the
    submitted shape (or the dataset's own).
    """

    shape = forms.ChoiceField(label=_("Shape"), choices=Dataset.Shape.choices)
    text_split = forms.ChoiceField(label=_("Samples"), choices=Dataset.TextSplit.choices)
    template = forms.ChoiceField(label=_("Prompt template"), choices=Dataset.Template.choices)
    custom_template = forms.CharField(
        label=_("Custom template"),
        required=False,
        max_length=4000,
        help_text=_(
            "Placeholders such as {instruction}, {input}, {output} or any column; "
            "{output} is trained."
        ),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": DEFAULT_CUSTOM_TEMPLATE}),
    )
    model = forms.ModelChoiceField(
        label=_("Tokenizer of"), queryset=BaseModel.objects.all(), required=False, empty_label=None
    )

    def __init__(self, data=None, *, dataset: Dataset) -> None:
        initial = {
            "shape": dataset.shape,
            "text_split": dataset.text_split,
            "template": dataset.template,
            "custom_template": dataset.custom_template,
            **{f"map_{k}": v for k, v in dataset.mapping.items()},
        }
        super().__init__(data, initial=initial)
        self.dataset = dataset
        if dataset.file_format == Dataset.FileFormat.TXT:
            self.fields["shape"].choices = [(Dataset.Shape.TEXT, Dataset.Shape.TEXT.label)]
            self.mapped_fields: list[str] = []
        else:
            del self.fields["text_split"]
            shape = (data or {}).get("shape") or dataset.shape
            self.mapped_fields = list(SHAPE_FIELDS.get(shape, ()))
        columns = [("", _("(same name)"))] + [(c, c) for c in dataset.columns]
        for name in self.mapped_fields:
            label = _("Column for “%(field)s”") % {"field": name}
            if dataset.columns:
                field = forms.ChoiceField(label=label, choices=columns, required=False)
            else:
                field = forms.CharField(label=label, required=False, max_length=200)
            self.fields[f"map_{name}"] = field

    def mapping_fields(self):
        return [self[f"map_{name}"] for name in self.mapped_fields]

    def spec(self) -> DataSpec:
        data = self.cleaned_data
        mapping = {n: data[f"map_{n}"] for n in self.mapped_fields if data.get(f"map_{n}")}
        return DataSpec(
            format=self.dataset.file_format,
            shape=data["shape"],
            mapping=mapping,
            text_split=data.get("text_split") or "line",
            template=data["template"],
            custom_template=data.get("custom_template", ""),
        )

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.spec().check()
            except DatasetError as exc:
                raise forms.ValidationError([p.message for p in exc.problems]) from exc
        return cleaned
