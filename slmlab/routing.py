from django.urls import path

from projects.consumers import DatasetConsumer
from training.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    path("ws/datasets/<int:dataset_id>/", DatasetConsumer.as_asgi()),
]
