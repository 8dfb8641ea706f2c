"""Websockets that follow one object of the connected user (a run, a dataset, …).

The consumer authorizes in ``connect``: an object that is not the user's is refused
before the handshake completes, with the same answer as for one that does not exist
(like the pages' 404). It then joins the object's group and sends the current state at
once, so a page that missed a push while it connected is never stale; every later push
to the group is an HTML fragment that htmx swaps in by id.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from channels.layers import get_channel_layer

NOT_FOUND = 4404


class FollowConsumer(WebsocketConsumer):
    """Subclasses say which object a path names, its group, and its current state."""

    group: str | None = None

    def find(self, user: Any, kwargs: dict[str, Any]) -> Any | None:
        raise NotImplementedError

    def group_of(self, obj: Any) -> str:
        raise NotImplementedError

    def current_state(self, obj: Any) -> str:
        raise NotImplementedError

    def connect(self) -> None:
        user = self.scope.get("user")
        obj = None
        if user is not None and user.is_authenticated:
            obj = self.find(user, self.scope["url_route"]["kwargs"])
        if obj is None:
            self.close(code=NOT_FOUND)
            return
        self.group = self.group_of(obj)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()
        self.send(text_data=self.current_state(obj))

    def disconnect(self, code: int) -> None:
        if self.group:
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive(self, text_data=None, bytes_data=None) -> None:
        # Pages only listen; commands go through the HTTP views.
        pass

    def push(self, event: dict) -> None:
        self.send(text_data=event["html"])


class UnknownPathConsumer(WebsocketConsumer):
    """Every websocket path no page follows (``/ws/nope/``, ``/ws/runs/abc/``): refused
    before the handshake with the answer a missing object gets, instead of the router's
    "No route found" exception (a 500 and a traceback in the log)."""

    def connect(self) -> None:
        self.close(code=NOT_FOUND)


def push_to_group(group: str, html: str) -> None:
    """Send ``html`` to every page following ``group`` (call it after commit)."""
    async_to_sync(get_channel_layer().group_send)(group, {"type": "push", "html": html})
