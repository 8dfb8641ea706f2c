from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from playground.models import MAX_COLUMNS, Conversation
from playground.services import RUN_PREFIX, Target, base_label, tuned_runs
from projects.models import BaseModel
from training.engine.inference.sampling import (
    MAX_NEW_TOKENS,
    MAX_STOP_LENGTH,
    MAX_STOP_STRINGS,
    Sampling,
    SamplingError,
)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What the key is for, e.g. the script that uses it."),
    )


def model_options(user) -> list[tuple[str, str, int]]:
    """(model id, label, context length) for every model ``user`` may chat with: the
    store's models, then the user's runs that saved an adapter or a pretrained model
    (newest first)."""
    options = [(m.name, m.name, m.context_length) for m in BaseModel.objects.order_by("name")]
    for run in tuned_runs(user):
        model_id = f"{RUN_PREFIX}{run.pk}"
        context = Target(model_id, run.base_model, run).context_length
        options.append((model_id, base_label(run), context))
    return options


class SettingsForm(forms.Form):
    """The models of a conversation (1-4 columns), its system prompt and the sampling
    settings the next message is answered with."""

    system_prompt = forms.CharField(
        label=_("System prompt"),
        max_length=4000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    temperature = forms.FloatField(
        label=_("Temperature"),
        min_value=0.0,
        max_value=2.0,
        initial=0.7,
        help_text=_("0 always picks the likeliest token."),
    )
    top_p = forms.FloatField(label=_("Top-p"), min_value=0.01, max_value=1.0, initial=1.0)
    top_k = forms.IntegerField(
        label=_("Top-k"), min_value=0, max_value=1000, initial=0, help_text=_("0: no limit.")
    )
    repetition_penalty = forms.FloatField(
        label=_("Repetition penalty"), min_value=0.01, max_value=2.0, initial=1.0
    )
    max_new_tokens = forms.IntegerField(
        label=_("Max new tokens"), min_value=1, max_value=MAX_NEW_TOKENS, initial=256
    )
    stop = forms.CharField(
        label=_("Stop strings"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One a line; the answer ends before the first one it writes."),
    )

    def __init__(self, *args, user, models_fixed: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.options = model_options(user)
        self.context_of = {model_id: context for model_id, _label, context in self.options}
        self.label_of = {model_id: label for model_id, label, _context in self.options}
        choices = [(model_id, label) for model_id, label, _context in self.options]
        if models_fixed:  # a model gone since (a deleted run) still names its column
            initial = kwargs.get("initial") or {}
            gone = [initial.get(f"model_{n + 1}") for n in range(MAX_COLUMNS)]
            choices += [(m, m) for m in gone if m and m not in self.context_of]
        for column in range(MAX_COLUMNS):
            self.fields[f"model_{column + 1}"] = forms.ChoiceField(
                label=_("Model %(n)d") % {"n": column + 1},
                choices=([] if column == 0 else [("", _("(none)"))]) + choices,
                required=column == 0,
                # A conversation's columns keep their models: each has its own history.
                disabled=models_fixed,
            )
        self.order_fields([f"model_{n + 1}" for n in range(MAX_COLUMNS)])

    @property
    def model_fields(self) -> list:
        return [self[f"model_{n + 1}"] for n in range(MAX_COLUMNS)]

    @property
    def sampling_fields(self) -> list:
        names = ["temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens"]
        return [self[name] for name in names]

    def clean_stop(self) -> list[str]:
        lines = [line for line in self.cleaned_data["stop"].splitlines() if line.strip()]
        if len(lines) > MAX_STOP_STRINGS:
            raise ValidationError(
                _("At most %(n)d stop strings.") % {"n": MAX_STOP_STRINGS}, code="too_many"
            )
        if any(len(line) > MAX_STOP_LENGTH for line in lines):
            raise ValidationError(
                _("A stop string has at most %(n)d characters.") % {"n": MAX_STOP_LENGTH},
                code="too_long",
            )
        return lines

    def clean(self) -> dict:
        data = super().clean()
        model_ids = [data.get(f"model_{n + 1}") for n in range(MAX_COLUMNS)]
        data["model_ids"] = [model_id for model_id in model_ids if model_id]
        max_new = data.get("max_new_tokens")
        if max_new is not None:
            for model_id in data["model_ids"]:
                context = self.context_of.get(model_id, 0)
                if context and max_new >= context:
                    self.add_error(
                        "max_new_tokens",
                        _(
                            "%(model)s reads at most %(n)d tokens, the conversation and its "
                            "answer together: ask for fewer new tokens."
                        )
                        % {"model": self.label_of[model_id], "n": context},
                    )
                    break
        if not self.errors:
            try:  # the rule the worker applies, so nothing is queued that it refuses
                Sampling(**{k: data[k] for k in SAMPLING_FIELDS}, stop=tuple(data["stop"]))
            except SamplingError as exc:
                self.add_error(exc.param if exc.param in self.fields else None, exc.message)
        return data

    def settings(self) -> dict:
        """The cleaned values, as Conversation fields."""
        data = self.cleaned_data
        fields = {k: data[k] for k in (*SAMPLING_FIELDS, "system_prompt", "stop")}
        return {**fields, "model_ids": data["model_ids"]}

    @classmethod
    def initial_from(cls, conversation: Conversation) -> dict:
        initial = {k: getattr(conversation, k) for k in (*SAMPLING_FIELDS, "system_prompt")}
        initial["stop"] = "\n".join(conversation.stop)
        for column, model_id in enumerate(conversation.model_ids):
            initial[f"model_{column + 1}"] = model_id
        return initial


SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


class MessageForm(forms.Form):
    content = forms.CharField(
        label=_("Message"),
        max_length=8000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Write a message first.")},
    )


class TitleForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
