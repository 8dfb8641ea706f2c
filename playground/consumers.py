"""The Playground's websocket: relays the tokens of a conversation's answers as they are
written, as HTML fragments htmx swaps in by id.

Authorized in ``connect`` like every page (another user's conversation is refused as
one that does not exist). It then sends the conversation's turns as the database has
them and follows every answer still being written; a message sent later reaches it
through the conversation's group (``events.follow_turn``). Each answer's events come
from the relay's stream from its first token, so a page that connects late, or
reconnects, shows the whole text. The pushes carry the whole text so far (a lost one
costs nothing); the last push is the answer as the database has it.
"""

from __future__ import annotations

import asyncio
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from playground import conversations, events, relay
from playground.models import Answer, Conversation, Generation
from slmlab.consumers import NOT_FOUND

# At most this often a streaming answer is pushed (tokens in between are batched).
PUSH_INTERVAL_S = 0.1
# How long a listener waits for the next event before it looks at the database (a
# generation withdrawn before any worker took it never gets a last event).
CHECK_EVERY_S = 10.0


class ConversationConsumer(AsyncWebsocketConsumer):
    group: str | None = None
    closed = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        found = None
        if user is not None and user.is_authenticated:
            found = await database_sync_to_async(self._find)(user, conversation_id)
        if found is None:
            await self.close(code=NOT_FOUND)
            return
        conversation, state, active = found
        self.following: dict[int, asyncio.Task] = {}
        self.group = events.conversation_group(conversation.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=state)
        for answer_id, generation_id in active:
            self._follow(answer_id, generation_id)

    @staticmethod
    def _find(user, conversation_id: int):
        conversation = Conversation.objects.filter(pk=conversation_id, owner_id=user.pk).first()
        if conversation is None:
            return None
        state = render_to_string(
            f"{events.TEMPLATE}#turns", {"turns": conversations.turns_of(conversation)}
        )
        active = list(
            Answer.objects.filter(
                turn__conversation=conversation, generation__status__in=conversations.ACTIVE
            ).values_list("pk", "generation_id")
        )
        return conversation, state, active

    async def disconnect(self, code: int) -> None:
        # The answers go on being written (and saved) without a page to show them.
        # A cancel that lands while the relay's Redis connection is being opened can
        # be swallowed there (redis-py), so the tasks also look at this flag.
        self.closed = True
        for task in getattr(self, "following", {}).values():
            task.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # Commands (send, stop) go through the HTTP views.
        pass

    async def turn_sent(self, event: dict) -> None:
        answers = await database_sync_to_async(
            lambda: list(
                Answer.objects.filter(turn_id=event["turn_id"]).values_list("pk", "generation_id")
            )
        )()
        for answer_id, generation_id in answers:
            self._follow(answer_id, generation_id)

    def _follow(self, answer_id: int, generation_id: int) -> None:
        if answer_id not in self.following:
            task = asyncio.create_task(self._relay(answer_id, generation_id))
            self.following[answer_id] = task

    async def _relay(self, answer_id: int, generation_id: int) -> None:
        while not await self._stream(answer_id, generation_id):
            if self.closed or await database_sync_to_async(self._is_final)(generation_id):
                break
        if self.closed:
            return
        answer = await database_sync_to_async(Answer.objects.select_related("generation").get)(
            pk=answer_id
        )
        await self.send(text_data=events.render_answer(answer))

    async def _stream(self, answer_id: int, generation_id: int) -> bool:
        """Push the answer's text as its tokens come; True once its last event came,
        False when none came for a while (the caller looks at the database)."""
        text, pushed, last_push = "", "", 0.0
        try:
            async for event in relay.listen(generation_id, timeout=CHECK_EVERY_S):
                if self.closed:
                    return False
                if event["type"] != "token":
                    return True
                text += event["text"]
                if time.monotonic() - last_push >= PUSH_INTERVAL_S:
                    await self.send(text_data=events.render_streaming_text(answer_id, text))
                    pushed, last_push = text, time.monotonic()
        except relay.RelayTimeout:
            if text != pushed:
                await self.send(text_data=events.render_streaming_text(answer_id, text))
            return False
        return True

    @staticmethod
    def _is_final(generation_id: int) -> bool:
        return not Generation.objects.filter(
            pk=generation_id, status__in=conversations.ACTIVE
        ).exists()
