from types import SimpleNamespace

from django import forms
from django.utils.translation import gettext_lazy as _

from projects.models import BaseModel, Dataset, Project
from training.capacity import (
    Capacity,
    Device,
    capacity_for,
    expected_disk_bytes,
    this_machine,
    worker_classes,
)
from training.engine.config import ConfigError, RunConfig
from training.engine.data.samples import SAMPLE_RUN_DEFAULTS
from training.engine.devices import check_support
from training.models import Run

# The "Advanced" section: optional, each empty value takes the engine's default.
ADVANCED_FIELDS = [
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "lr_scheduler",
    "optimizer",
    "max_grad_norm",
    "gradient_checkpointing",
    "autocast",
    "compute_dtype",
    "train_on_prompt",
    "use_rslora",
    "use_dora",
    "lora_embeddings",
]
# Each field's entry in the Help page's glossary (/help/glossary/#<term>).
GLOSSARY = {
    "quantization": "quantization",
    "quant_type": "nf4",
    "double_quant": "double-quantization",
    "lora_r": "rank",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "target_modules": "target-modules",
    "learning_rate": "learning-rate",
    "epochs": "epoch",
    "batch_size": "batch-size",
    "grad_accum": "accumulation",
    "max_seq_len": "max-seq-len",
    "device": "worker",
    "warmup_ratio": "warmup",
    "warmup_steps": "warmup",
    "weight_decay": "weight-decay",
    "lr_scheduler": "scheduler",
    "optimizer": "optimizer",
    "max_grad_norm": "max-grad-norm",
    "gradient_checkpointing": "gradient-checkpointing",
    "autocast": "precision",
    "compute_dtype": "compute-dtype",
    "train_on_prompt": "loss-on-answers",
    "use_rslora": "rslora",
    "use_dora": "dora",
    "lora_embeddings": "lora-embeddings",
}
GLOSSARY_URL = "/help/glossary/"

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
    *ADVANCED_FIELDS,
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
    device = forms.ChoiceField(
        label=_("Worker"),
        required=False,
        help_text=_("The estimate and the checks below are for this worker's device"),
    )
    # --- Advanced ---
    warmup_ratio = forms.FloatField(
        label=_("Warmup (share of steps)"),
        required=False,
        min_value=0.0,
        max_value=0.5,
        help_text=_("The learning rate rises from 0 over this share of the run"),
    )
    warmup_steps = forms.IntegerField(
        label=_("Warmup steps"),
        required=False,
        min_value=0,
        max_value=100_000,
        help_text=_("More than 0: this many warmup steps instead of the share"),
    )
    weight_decay = forms.FloatField(
        label=_("Weight decay"),
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text=_("Pulls the LoRA weights towards 0 each step; 0 = none"),
    )
    lr_scheduler = forms.ChoiceField(
        label=_("Learning-rate schedule"),
        required=False,
        choices=[
            ("cosine", _("cosine")),
            ("linear", _("linear")),
            ("constant", _("constant (no warmup)")),
            ("constant_with_warmup", _("constant with warmup")),
        ],
        help_text=_("How the learning rate falls after the warmup"),
    )
    optimizer = forms.ChoiceField(
        label=_("Optimizer"),
        required=False,
        choices=[
            ("adamw", "AdamW"),
            ("adamw8bit", _("8-bit AdamW (bitsandbytes)")),
            ("paged_adamw8bit", _("paged 8-bit AdamW (bitsandbytes)")),
            ("paged_adamw32bit", _("paged 32-bit AdamW (bitsandbytes)")),
            ("sgd", _("SGD with momentum")),
        ],
        help_text=_("8-bit keeps a quarter of AdamW's state; paged spills it to RAM on a GPU"),
    )
    max_grad_norm = forms.FloatField(
        label=_("Max gradient norm"),
        required=False,
        min_value=0.0,
        max_value=100.0,
        help_text=_("Clips larger gradients to this length; 0 = no clipping"),
    )
    gradient_checkpointing = forms.BooleanField(
        label=_("Gradient checkpointing"),
        required=False,
        # xgettext:no-python-format
        help_text=_("Recomputes activations in the backward pass: less memory, about 30% slower"),
    )
    autocast = forms.ChoiceField(
        label=_("Precision"),
        required=False,
        choices=[
            ("auto", _("auto (the fastest accurate one for the device)")),
            ("bfloat16", "bf16"),
            ("float16", "fp16"),
            ("float32", "fp32"),
        ],
        help_text=_("The forward pass's number format; LoRA weights and optimizer stay fp32"),
    )
    compute_dtype = forms.ChoiceField(
        label=_("4-bit compute dtype"),
        required=False,
        choices=[
            ("auto", _("auto (follows the precision)")),
            ("bfloat16", "bf16"),
            ("float16", "fp16"),
            ("float32", "fp32"),
        ],
        help_text=_("What quantized layers dequantize to for each matmul"),
    )
    train_on_prompt = forms.TypedChoiceField(
        label=_("Loss on"),
        required=False,
        coerce=lambda value: value == "True",
        choices=[("False", _("the answers only")), ("True", _("the whole text"))],
        help_text=_("Answers only: the model learns to reply, not to repeat prompts"),
    )
    use_rslora = forms.BooleanField(
        label=_("rsLoRA scaling"),
        required=False,
        help_text=_("Scales updates by alpha/√rank: steadier at high ranks"),
    )
    use_dora = forms.BooleanField(
        label=_("DoRA"),
        required=False,
        help_text=_("Learns each weight's magnitude and direction apart: slower, often better"),
    )
    lora_embeddings = forms.BooleanField(
        label=_("LoRA on embeddings and LM head"),
        required=False,
        help_text=_("For new words or a new language; larger adapters"),
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
        # The live workers' devices, largest first; this machine's before any reported.
        self.devices = worker_classes() or [this_machine()]
        self.fields["device"].choices = [(d.key, d.label) for d in self.devices]
        self.fields["device"].initial = self.devices[0].key
        for name, term in GLOSSARY.items():
            self.fields[name].glossary = f"{GLOSSARY_URL}#{term}"
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
        device = self.chosen_device()
        for field, message in check_support(
            SimpleNamespace(**self.config()), device.report
        ).items():
            self.add_error(field, message)
        if self.errors:
            return cleaned
        self.capacity = capacity_for(self.base_path(), self.config(), device)
        if self.capacity and not self.capacity.fits and not cleaned.get("start_anyway"):
            self.add_error(
                None,
                _(
                    "This run needs about %(need).0f MB but %(device)s has %(have).0f MB, "
                    "%(usable).0f MB of it usable once the %(margin)d%% safety margin is kept. "
                    "Lower the batch size or sequence length, quantize to 4-bit, "
                    "or tick “Start anyway”."
                )
                % {
                    "need": self.capacity.estimate.total_mb,
                    "device": self.capacity.device.name,
                    "have": self.capacity.device.memory_mb,
                    "usable": self.capacity.usable_mb,
                    "margin": self.capacity.margin_percent,
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
            name: defaults[name]
            if self.cleaned_data.get(name) in (None, "")
            else self.cleaned_data[name]
            for name in CONFIG_FIELDS
        }

    @property
    def advanced_errors(self) -> bool:
        """An Advanced setting was refused: the section opens to show why."""
        return self.is_bound and any(name in self.errors for name in ADVANCED_FIELDS)

    def chosen_device(self) -> Device:
        """The worker class the form's estimate and device checks are for."""
        key = self.cleaned_data.get("device") if hasattr(self, "cleaned_data") else None
        return next((d for d in self.devices if d.key == key), self.devices[0])

    def initial_capacity(self) -> Capacity | None:
        """The estimate for the form's initial values (the page before any change)."""
        model = BaseModel.objects.filter(pk=self.fields["base_model"].initial).first()
        if model is None:
            return None
        config = {name: self.fields[name].initial for name in CONFIG_FIELDS}
        return capacity_for(model, config, self.chosen_device())


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
