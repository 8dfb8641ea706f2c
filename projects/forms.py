from django import forms
from django.utils.translation import gettext_lazy as _

from projects.models import Project


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


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        label=_("JSONL file"),
        help_text=_('One JSON object per line with "instruction", optional "input", and "output".'),
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.json,application/jsonl"}),
    )
    name = forms.CharField(
        label=_("Name"), max_length=200, required=False, help_text=_("Defaults to the file name.")
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".jsonl", ".json")):
            raise forms.ValidationError(
                _("Expected a .jsonl file (one JSON object per line); got “%(name)s”."),
                params={"name": upload.name},
            )
        return upload

    def dataset_name(self) -> str:
        return self.cleaned_data["name"].strip() or self.cleaned_data["file"].name
