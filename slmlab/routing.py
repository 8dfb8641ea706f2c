from django.urls import path, re_path

from designer.consumers import TokenizerConsumer
from evaluations.consumers import EvaluationConsumer
from exports.consumers import ExportsConsumer
from playground.consumers import ConversationConsumer
from projects.consumers import (
    DatasetConsumer,
    DatasetImportConsumer,
    SyntheticGenerationConsumer,
    UploadConsumer,
)
from slmlab.consumers import UnknownPathConsumer
from training.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/exports/", ExportsConsumer.as_asgi()),
    path("ws/datasets/<int:dataset_id>/", DatasetConsumer.as_asgi()),
    path("ws/uploads/<int:upload_id>/", UploadConsumer.as_asgi()),
    path("ws/dataset-imports/<int:import_id>/", DatasetImportConsumer.as_asgi()),
    path("ws/synthetic/<int:generation_id>/", SyntheticGenerationConsumer.as_asgi()),
    path("ws/tokenizers/<int:tokenizer_id>/", TokenizerConsumer.as_asgi()),
    path("ws/evaluations/<int:evaluation_id>/", EvaluationConsumer.as_asgi()),
    path("ws/playground/<int:conversation_id>/", ConversationConsumer.as_asgi()),
    # Last: any other path is refused like a missing object, not with a routing error.
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
