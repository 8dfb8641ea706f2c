from django import forms
from django.utils.translation import gettext_lazy as _

from projects.models import BaseModel, Dataset, Project
from training.capacity import Capacity, capacity_for, expected_disk_bytes
from training.engine.config import ConfigError, RunConfig
from training.engine.data.samples import SAMPLE_RUN_DEFAULTS
from training.models import Run

# Fields of RunConfig the form edits; paths are filled in by the worker.
CONFIG_FIELDS = [
    "quantization",
    "quant_type",
    "double_quant",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "learning_rate",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum",
    "max_seq_len",
    "seed",
    "eval_every",
    "eval_examples",
    "checkpoint_every",
    "keep_checkpoints",
]


class RunForm(forms.Form):
    name = forms.CharField(label=_("Run name"), max_length=200)
    base_model = forms.ModelChoiceField(
        label=_("Model"), queryset=BaseModel.objects.all(), empty_label=None, required=False
    )
    pretrained = forms.ModelChoiceField(
        label=_("Or a model you pretrained"),
        queryset=Run.objects.none(),
        required=False,
        empty_label=_("(none: use the model above)"),
        help_text=_("The model one of your pretraining runs produced, fine-tuned with LoRA"),
    )
    dataset = forms.ModelChoiceField(
        label=_("Dataset"), queryset=Dataset.objects.none(), empty_label=None
    )
    quantization = forms.ChoiceField(
        label=_("Quantization"),
        choices=[("4bit", _("4-bit (QLoRA)")), ("8bit", _("8-bit")), ("none", _("none (LoRA)"))],
    )
    quant_type = forms.ChoiceField(label=_("4-bit type"), choices=[("nf4", "NF4"), ("fp4", "FP4")])
    double_quant = forms.BooleanField(label=_("Double quantization"), required=False)
    lora_r = forms.IntegerField(label=_("LoRA rank"), min_value=4, max_value=64)
    lora_alpha = forms.IntegerField(label=_("LoRA alpha"), min_value=1, max_value=1024)
    lora_dropout = forms.FloatField(label=_("LoRA dropout"), min_value=0.0, max_value=0.9)
    target_modules = forms.ChoiceField(
        label=_("Target modules"),
        choices=[("all-linear", _("all linear layers")), ("attention", _("attention only"))],
    )
    learning_rate = forms.FloatField(label=_("Learning rate"), min_value=1e-7, max_value=1e-1)
    epochs = forms.IntegerField(label=_("Epochs"), min_value=1, max_value=100)
    max_steps = forms.IntegerField(
        label=_("Max steps"),
        min_value=0,
        max_value=1_000_000,
        help_text=_("0 = train for the epochs above"),
    )
    batch_size = forms.IntegerField(label=_("Batch size"), min_value=1, max_value=512)
    grad_accum = forms.IntegerField(label=_("Gradient accumulation"), min_value=1, max_value=512)
    max_seq_len = forms.IntegerField(label=_("Max sequence length"), min_value=16, max_value=32768)
    seed = forms.IntegerField(label=_("Seed"), min_value=0, max_value=2**31 - 1)
    eval_every = forms.IntegerField(
        label=_("Validation loss every (steps)"),
        required=False,
        min_value=0,
        max_value=1_000_000,
        help_text=_(
            "On the dataset's validation split, and at the last step; 0 = about ten times a run"
        ),
    )
    eval_examples = forms.IntegerField(
        label=_("Evaluate on N validation examples at the end"),
        required=False,
        min_value=0,
        max_value=5000,
        help_text=_("Base vs tuned replies, scored with task metrics; 0 = no evaluation"),
    )
    checkpoint_every = forms.IntegerField(
        label=_("Checkpoint every (steps)"),
        required=False,
        min_value=0,
        max_value=1_000_000,
        help_text=_("A crashed worker loses at most this many steps; 0 = only when stopped"),
    )
    keep_checkpoints = forms.IntegerField(
        label=_("Checkpoints kept"), required=False, min_value=1, max_value=100
    )
    start_anyway = forms.BooleanField(
        label=_("Start anyway, even if the estimate says it will not fit"), required=False
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = project.owner
        self.capacity: Capacity | None = None
        # A dataset whose file was deleted after training can be looked at, not trained on.
        self.fields["dataset"].queryset = project.datasets.filter(file_deleted_at=None)
        self.fields["pretrained"].queryset = Run.objects.filter(
            owner=self.owner,
            kind=Run.Kind.PRETRAIN,
            status__in=(Run.Status.COMPLETED, Run.Status.TIMED_OUT),
        )
        if not self.is_bound:
            defaults = {**_config_defaults(), **SAMPLE_RUN_DEFAULTS}
            for name in CONFIG_FIELDS:
                self.fields[name].initial = defaults[name]
            self.fields["name"].initial = f"run {project.runs.count() + 1}"
            default_model = BaseModel.objects.filter(is_default=True).first()
            if default_model:
                self.fields["base_model"].initial = default_model.pk

    def clean(self):
        cleaned = super().clean()
        waiting = self.owner.runs.filter(status__in=Run.WAITING).count()
        if waiting >= self.owner.max_queued_runs:
            raise forms.ValidationError(
                _(
                    "You already have %(n)d queued runs, your limit: wait for one to start, "
                    "or cancel one."
                ),
                params={"n": waiting},
            )
        if not self.errors and not cleaned.get("pretrained") and not cleaned.get("base_model"):
            self.add_error("base_model", _("Choose a model to fine-tune."))
        if self.errors:
            return cleaned
        try:
            RunConfig.from_dict(
                {"model_dir": "-", "dataset_path": "-", "output_dir": "-", **self.config()}
            ).validate()
        except ConfigError as exc:
            for field, message in exc.errors.items():
                if field in self.fields:
                    self.add_error(field, message)
                else:
                    self.add_error(None, f"{field}: {message}")
            return cleaned
        self.capacity = capacity_for(self.base_path(), self.config())
        if self.capacity and not self.capacity.fits and not cleaned.get("start_anyway"):
            self.add_error(
                None,
                _(
                    "This run needs about %(need).0f MB but the largest worker (%(device)s) has "
                    "%(have).0f MB. Lower the batch size or sequence length, quantize to 4-bit, "
                    "or tick “Start anyway”."
                )
                % {
                    "need": self.capacity.estimate.total_mb,
                    "device": self.capacity.device.name,
                    "have": self.capacity.device.memory_mb,
                },
            )
        self._check_storage()
        return cleaned

    def _check_storage(self) -> None:
        need = expected_disk_bytes(self.capacity, self.config())
        used = sum(self.owner.storage_used().values())
        if used + need > self.owner.storage_quota_bytes:
            self.add_error(
                None,
                _(
                    "Your files use %(used).1f MB of your %(quota)d MB storage quota; this run "
                    "needs up to %(need).1f MB for its adapter and checkpoints. Delete datasets, "
                    "runs or checkpoints you no longer need, keep fewer checkpoints, or ask an "
                    "operator for more room."
                )
                % {
                    "used": used / 2**20,
                    "quota": self.owner.storage_quota_mb,
                    "need": need / 2**20,
                },
            )

    def base_path(self) -> str:
        """The folder of the chosen model: a pretrained one, else the store model."""
        pretrained = self.cleaned_data.get("pretrained")
        if pretrained is not None:
            return str(pretrained.model_dir)
        return self.cleaned_data["base_model"].path

    def base_choice(self) -> dict:
        """``base_model`` or ``base_run`` for a new run, as the form chose."""
        pretrained = self.cleaned_data.get("pretrained")
        if pretrained is not None:
            return {"base_model": None, "base_run": pretrained}
        return {"base_model": self.cleaned_data["base_model"], "base_run": None}

    def config(self) -> dict:
        # Optional fields left empty take the engine's defaults.
        defaults = _config_defaults()
        return {
            name: defaults[name] if self.cleaned_data.get(name) is None else self.cleaned_data[name]
            for name in CONFIG_FIELDS
        }

    def initial_capacity(self) -> Capacity | None:
        """The estimate for the form's initial values (the page before any change)."""
        model = BaseModel.objects.filter(pk=self.fields["base_model"].initial).first()
        if model is None:
            return None
        return capacity_for(model, {name: self.fields[name].initial for name in CONFIG_FIELDS})


def _config_defaults() -> dict:
    sample = RunConfig(model_dir="-", dataset_path="-", output_dir="-")
    return {name: getattr(sample, name) for name in CONFIG_FIELDS}


class ChatForm(forms.Form):
    prompt = forms.CharField(
        label=_("Prompt"), max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )
    system_prompt = forms.CharField(label=_("System prompt"), max_length=2000, required=False)
    max_new_tokens = forms.IntegerField(
        label=_("Max tokens"), min_value=1, max_value=1024, initial=64
    )
    temperature = forms.FloatField(
        label=_("Temperature"), min_value=0.0, max_value=2.0, initial=0.0
    )
    top_p = forms.FloatField(label=_("Top-p"), min_value=0.05, max_value=1.0, initial=1.0)


class GenerateForm(forms.Form):
    """Text from a pretrained model: it continues the prompt (no chat template)."""

    prompt = forms.CharField(
        label=_("Prompt"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    temperature = forms.FloatField(
        label=_("Temperature"), min_value=0.0, max_value=2.0, initial=0.8
    )
    max_new_tokens = forms.IntegerField(
        label=_("Length (tokens)"), min_value=1, max_value=512, initial=60
    )
