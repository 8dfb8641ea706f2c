"""Websocket of a tokenizer's page: its training status as it changes."""

from typing import Any

from designer.events import render_tokenizer_status, tokenizer_group
from designer.models import TrainedTokenizer
from slmlab.consumers import FollowConsumer


class TokenizerConsumer(FollowConsumer):
    def find(self, user: Any, kwargs: dict[str, Any]) -> TrainedTokenizer | None:
        return TrainedTokenizer.objects.filter(pk=kwargs["tokenizer_id"], owner=user).first()

    def group_of(self, obj: TrainedTokenizer) -> str:
        return tokenizer_group(obj.pk)

    def current_state(self, obj: TrainedTokenizer) -> str:
        return render_tokenizer_status(obj)
