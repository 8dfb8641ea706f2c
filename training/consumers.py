from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer

from training.events import render_chats, render_run_state, run_group
from training.models import Run

NOT_FOUND = 4404


class RunConsumer(WebsocketConsumer):
    """Follows one run: sends its full state at once, then every push for it."""

    group: str | None = None

    def connect(self) -> None:
        user = self.scope.get("user")
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        run = None
        if user is not None and user.is_authenticated:
            run = Run.objects.filter(pk=run_id, owner_id=user.pk).first()
        if run is None:
            # Refused before the handshake completes: the same answer for
            # "no such run" and "not yours", like the 404 of the pages.
            self.close(code=NOT_FOUND)
            return
        self.group = run_group(run.pk)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()
        self.send(text_data=render_run_state(run) + render_chats(run))

    def disconnect(self, code: int) -> None:
        if self.group:
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive(self, text_data=None, bytes_data=None) -> None:
        # The page only listens; commands go through the HTTP views.
        pass

    def run_update(self, event: dict) -> None:
        self.send(text_data=event["html"])
