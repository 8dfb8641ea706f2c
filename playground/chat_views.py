"""The Playground: conversations with one to four models side by side.

A new conversation starts with its first message (the models, the system prompt and the
sampling settings are picked with it); answers stream into the page over the websocket
(consumers.py). One URL per conversation; with HTMX the same views answer with the
partial they changed.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from playground import conversations, services
from playground.forms import MessageForm, SettingsForm, TitleForm
from playground.models import Conversation
from slmlab.htmx import redirect


def _get_conversation_for_user(request: HttpRequest, conversation_id: int) -> Conversation:
    return get_object_or_404(Conversation, pk=conversation_id, owner=request.user)


# The serving core's names for the parameters it refuses, as the form's fields.
REFUSED = (services.InvalidRequest, services.UnknownModel)
FIELD_OF_PARAM = {"max_tokens": "max_new_tokens"}


def _refused(exc: Exception, settings_form: SettingsForm, message_form: MessageForm) -> None:
    """What the serving core refused, next to the field at fault (the form checks the
    same rules first, so this is for what changed in between: a deleted run, say)."""
    if isinstance(exc, services.UnknownModel):
        settings_form.add_error(
            None, _("The model %(id)s is no longer available.") % {"id": exc.model_id}
        )
        return
    field = FIELD_OF_PARAM.get(exc.param, exc.param)
    if exc.param.startswith("messages"):
        message_form.add_error("content", exc.message)
    else:
        settings_form.add_error(field if field in settings_form.fields else None, exc.message)


def _preselected(request: HttpRequest) -> dict:
    """?model=a&model=b (the run page's Compare button) fills the first columns."""
    return {f"model_{n + 1}": m for n, m in enumerate(request.GET.getlist("model")[:4])}


@login_required
@require_http_methods(["GET", "POST"])
def playground(request: HttpRequest) -> HttpResponse:
    """The conversation list and a new conversation: models, settings, first message."""
    if request.method == "GET":
        settings_form = SettingsForm(user=request.user, initial=_preselected(request))
        message_form = MessageForm()
    else:
        settings_form = SettingsForm(request.POST, user=request.user)
        message_form = MessageForm(request.POST)
        if settings_form.is_valid() and message_form.is_valid():
            try:
                conversation = conversations.start(
                    request.user, settings_form.settings(), message_form.cleaned_data["content"]
                )
            except REFUSED as exc:
                _refused(exc, settings_form, message_form)
            else:
                return redirect(request, conversation.get_absolute_url())
    context = {
        "settings_form": settings_form,
        "message_form": message_form,
        "conversations": request.user.conversations.all(),
    }
    template = "playground/playground.html"
    if request.htmx and request.method == "POST":
        template += "#new_conversation"
    return render(request, template, context)


def _conversation_context(conversation: Conversation, settings_form=None, message_form=None):
    has_turns = conversation.turns.exists()
    return {
        "conversation": conversation,
        "settings_form": settings_form
        or SettingsForm(
            user=conversation.owner,
            initial=SettingsForm.initial_from(conversation),
            models_fixed=has_turns,
        ),
        "message_form": message_form or MessageForm(),
        "title_form": TitleForm(initial={"title": conversation.title}),
        "turns": conversations.turns_of(conversation),
    }


@login_required
@require_http_methods(["GET"])
@vary_on_headers("HX-Request")
def conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    template = "playground/conversation.html"
    if request.htmx:
        template += "#turns"
    return render(request, template, _conversation_context(conversation))


@login_required
@require_POST
def send(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The next message, with the settings as they are in the form now."""
    conversation = _get_conversation_for_user(request, conversation_id)
    has_turns = conversation.turns.exists()
    # Once answered, the models stay: disabled fields take their initial values.
    settings_form = SettingsForm(
        request.POST,
        user=request.user,
        models_fixed=has_turns,
        initial=SettingsForm.initial_from(conversation),
    )
    message_form = MessageForm(request.POST)
    if settings_form.is_valid() and message_form.is_valid():
        try:
            conversations.send(
                conversation, message_form.cleaned_data["content"], settings_form.settings()
            )
        except REFUSED as exc:
            _refused(exc, settings_form, message_form)
        else:
            if not request.htmx:
                return redirect(request, conversation.get_absolute_url())
            context = _conversation_context(conversation)
            return render(request, "playground/conversation.html#after_send", context)
    context = _conversation_context(conversation, settings_form, message_form)
    if not request.htmx:
        return render(request, "playground/conversation.html", context)
    return render(request, "playground/conversation.html#composer", context)


@login_required
@require_POST
def stop(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Stop every answer still being written; what was written is kept."""
    conversation = _get_conversation_for_user(request, conversation_id)
    conversations.stop(conversation)
    if not request.htmx:
        return redirect(request, conversation.get_absolute_url())
    context = _conversation_context(conversation)
    return render(request, "playground/conversation.html#turns", context)


@login_required
@require_POST
def rename(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    form = TitleForm(request.POST)
    if form.is_valid():
        conversation.title = form.cleaned_data["title"]
        conversation.save(update_fields=["title", "updated"])
        if not request.htmx:
            return redirect(request, conversation.get_absolute_url())
    context = {**_conversation_context(conversation), "title_form": form}
    return render(request, "playground/conversation.html#title", context)


@login_required
@require_POST
def delete(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _get_conversation_for_user(request, conversation_id)
    conversations.delete(conversation)
    messages.success(request, _("The conversation is deleted."))
    return redirect(request, reverse("playground:playground"))
