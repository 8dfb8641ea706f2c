"""Downloads that stream: files and folders (as zip archives) in chunks, never whole.

Under ASGI, Django serves a streaming response whose content is a *synchronous*
iterator by reading all of it into a list first (it warns, then buffers), so a 500 MB
download would sit in the web process's memory. These responses iterate asynchronously:
each chunk is read in a worker thread and handed on, so memory stays at one chunk.
Archives are built as they stream (zipstream-ng, stored without compression: weights do
not compress, and the web process should not spend CPU on it), so nothing is written to
disk and no archive is built in the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from zipstream import ZipStream

CHUNK = 1024 * 1024


async def _async_chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    iterator = iter(chunks)
    pull = sync_to_async(next, thread_sensitive=False)
    while True:
        chunk = await pull(iterator, None)
        if chunk is None:
            return
        yield chunk


def _attachment(content: Iterable[bytes], filename: str, content_type: str, size: int | None):
    response = StreamingHttpResponse(_async_chunks(content), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if size is not None:
        response["Content-Length"] = str(size)
    return response


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def stream_file(
    path: Path, filename: str, content_type: str = "application/octet-stream"
) -> StreamingHttpResponse:
    """One file as an attachment, read a chunk at a time."""
    return _attachment(_file_chunks(path), filename, content_type, path.stat().st_size)


def stream_folder_zip(folder: Path, filename: str, growing: bool = False) -> StreamingHttpResponse:
    """``folder``'s files as a zip built while it streams.

    ``growing``: files may still be written to (TensorBoard events of a training run),
    so the size cannot be announced in advance.
    """
    archive = ZipStream.from_path(str(folder), sized=not growing, arcname="/")
    size = len(archive) if archive.sized else None
    return _attachment(archive, filename, "application/zip", size)


def stream_chunks(
    chunks: Iterable[bytes], filename: str, content_type: str
) -> StreamingHttpResponse:
    """Generated content (a CSV written row by row) as an attachment, chunk by chunk."""
    return _attachment(chunks, filename, content_type, None)
