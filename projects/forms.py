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
