"""Reading the lab's streaming downloads in tests (their content is an async iterator)."""

from asgiref.sync import async_to_sync


def content_of(response) -> bytes:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()
