from django.urls import path

from playground import api, completions

app_name = "v1"
urlpatterns = [
    path("models", api.models, name="models"),
    path("models/<path:model_id>", api.model, name="model"),
    path("chat/completions", completions.chat_completions, name="chat_completions"),
    path("completions", completions.completions, name="completions"),
]
