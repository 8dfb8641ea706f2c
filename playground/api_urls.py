from django.urls import path

from playground import api

app_name = "v1"
urlpatterns = [
    path("models", api.models, name="models"),
    path("models/<path:model_id>", api.model, name="model"),
]
