"""Starting a pretraining run from a design: what the student chooses on the design page."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from designer.models import Design, TrainedTokenizer
from training.capacity import largest_worker_bytes
from training.engine.design import counts
from training.models import Run


class PretrainForm(forms.Form):
    name = forms.CharField(label=_("Run name"), max_length=200)
    tokenizer = forms.ModelChoiceField(
        label=_("Tokenizer"), queryset=TrainedTokenizer.objects.none(), empty_label=None
    )
    dataset = forms.ModelChoiceField(
        label=_("Texts"), queryset=None, empty_label=None, help_text=_("A dataset of the project")
    )
    steps = forms.IntegerField(label=_("Steps"), min_value=1, max_value=1_000_000, initial=300)
    learning_rate = forms.FloatField(
        label=_("Learning rate"), min_value=1e-6, max_value=1e-1, initial=3e-3
    )
    sample_every = forms.IntegerField(
        label=_("Sample text every (steps)"), min_value=0, max_value=100_000, initial=25
    )
    sample_prompt = forms.CharField(
        label=_("Sample prompt"), max_length=200, initial="It was sunny.", required=False
    )
    checkpoint_every = forms.IntegerField(
        label=_("Checkpoint every (steps)"), min_value=0, max_value=1_000_000, initial=100
    )

    def __init__(self, *args, design: Design, **kwargs):
        super().__init__(*args, **kwargs)
        self.design = design
        project = design.project
        self.fields["tokenizer"].queryset = project.tokenizers.filter(
            status=TrainedTokenizer.Status.DONE
        )
        self.fields["dataset"].queryset = project.datasets.filter(file_deleted_at=None)
        if not self.is_bound:
            self.fields["name"].initial = f"{design.name}: pretraining"
            if design.tokenizer_id:
                self.fields["tokenizer"].initial = design.tokenizer_id

    def clean(self):
        cleaned = super().clean()
        owner = self.design.owner
        waiting = owner.runs.filter(status__in=Run.WAITING).count()
        if waiting >= owner.max_queued_runs:
            raise forms.ValidationError(
                _("You already have %(n)d queued runs, your limit: wait for one to start."),
                params={"n": waiting},
            )
        tokenizer = cleaned.get("tokenizer")
        if tokenizer is None:
            return cleaned
        errors = counts.check(
            self.design.design,
            batch_size=self.design.batch_size,
            sequence_length=self.design.sequence_length,
            tokenizer_vocab=tokenizer.trained_vocab_size,
            memory_limit_bytes=largest_worker_bytes(),
        )
        for path, message in errors.items():
            self.add_error(
                None,
                _("The design: %(field)s: %(message)s")
                % {
                    "field": path,
                    "message": message,
                },
            )
        return cleaned

    def config(self) -> dict:
        """The run's config: the pretraining settings and the design as it is now."""
        data, design = self.cleaned_data, self.design
        share = design_share(data["dataset"])
        return {
            "design": design.spec,
            "design_name": design.name,
            "steps": data["steps"],
            "batch_size": design.batch_size,
            "sequence_length": design.sequence_length,
            "learning_rate": data["learning_rate"],
            "sample_every": data["sample_every"],
            "sample_prompt": data["sample_prompt"] or "",
            "checkpoint_every": data["checkpoint_every"],
            "eval_every": 0,
            "validation_share": share,
        }


def design_share(dataset) -> float:
    """The dataset's own validation share, else 5% of its texts held out."""
    return dataset.val_percent / 100 if dataset.val_percent else 0.05
