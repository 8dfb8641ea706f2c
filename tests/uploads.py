"""The page's upload protocol (static/js/app.js, projects/uploads.py) with a test client."""

from django.urls import reverse


def start_url(project, purpose: str = "dataset", dataset=None) -> str:
    if purpose == "validation":
        return reverse("projects:validation_upload_start", args=[project.pk, dataset.pk])
    if purpose == "replacement":
        return reverse("projects:replacement_upload_start", args=[project.pk, dataset.pk])
    return reverse("projects:upload_start", args=[project.pk])


def put_piece(client, url: str, offset: int, piece: bytes):
    return client.put(
        url, piece, content_type="application/octet-stream", headers={"Upload-Offset": str(offset)}
    )


def send_in_pieces(client, url: str, content: bytes, filename: str, **fields):
    """Open an upload at ``url``, send ``content`` piece by piece as the page does and
    finish it; returns the answer that ended it (the start's or a piece's refusal, or the
    finish's answer)."""
    started = client.post(url, {"filename": filename, "size": len(content), **fields})
    if started.status_code != 201:
        return started
    upload_url, chunk = started.json()["url"], started.json()["chunk_size"]
    offset = 0
    while offset < len(content):
        answer = put_piece(client, upload_url, offset, content[offset : offset + chunk])
        if answer.status_code != 200:
            return answer
        offset = answer.json()["offset"]
    return client.post(upload_url + "finish/")
