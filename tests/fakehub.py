"""A Hugging Face Hub on 127.0.0.1 for tests: just the endpoints a model download calls.

The real ``huggingface_hub`` client talks HTTP to it, so a test exercises the same
requests, headers and error codes as a download from huggingface.co:

- ``GET /api/models/<repo>[/revision/<rev>]`` (``HfApi.model_info``, with
  ``?blobs=true`` the siblings carry sizes, blob ids and LFS details);
- ``HEAD /<repo>/resolve/<rev>/<file>`` (``get_hf_file_metadata``: ``X-Repo-Commit``,
  ``ETag``, ``Content-Length``, and ``X-Linked-Etag``/``X-Linked-Size`` for LFS files);
- ``GET /<repo>/resolve/<rev>/<file>``, with ``Range`` for resumed downloads.

Errors carry the ``X-Error-Code`` header the client turns into ``RepositoryNotFoundError``,
``GatedRepoError``, ``RevisionNotFoundError`` and ``RemoteEntryNotFoundError``.

And the endpoints an upload calls (``HfApi.create_repo`` then ``create_commit``), with the
legacy LFS protocol (the client is told not to use Xet, which this server does not speak):

- ``POST /api/repos/create`` (401 for an unknown token, 403 outside the token's
  namespaces, 409 when the repository exists);
- ``POST /api/validate-yaml`` (the model card's metadata);
- ``POST /api/models/<repo>/preupload/<rev>``: which files go through LFS;
- ``POST /<repo>.git/info/lfs/objects/batch`` and the ``PUT`` to the upload URL it gives
  (the sha256 of the body must match the object id);
- ``POST /api/models/<repo>/commit/<rev>``: the NDJSON commit (header, ``file`` lines
  in base64, ``lfsFile`` lines naming uploaded objects).

``cut_commit()`` drops the connection after reading the next commit, before answering:
the network failed mid-upload.

And dataset repositories (``add_dataset``), read the way ``HfApi.dataset_info`` and
``hf_hub_download(repo_type="dataset")`` read them: ``GET /api/datasets/<repo>[/revision/<rev>]``
(with ``cardData``, the README's metadata, where the ``configs`` a repository declares
live) and ``HEAD``/``GET /datasets/<repo>/resolve/<rev>/<file>``. A private dataset answers
like a missing one without a token that may read it; a gated one shows its file list to
anyone and its files only to such a token (``add_reader``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".parquet"}
CREATE_REPO = "/api/repos/create"
VALIDATE_YAML = "/api/validate-yaml"
PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$")
COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$")
LFS_BATCH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$")
LFS_UPLOAD = re.compile(r"^/lfs-upload/(?P<repo>[^/]+/[^/]+)/(?P<oid>[0-9a-f]{64})$")
MODEL_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
DATASET_INFO = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
DATASET_RESOLVE = re.compile(
    r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$"
)


@dataclass
class FakeRepo:
    """One model repository at one commit: its files by path inside the repo."""

    repo_id: str
    files: dict[str, bytes]
    gated: bool = False
    private: bool = False
    card_data: dict | None = None
    commit: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.repo_id.encode())
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + self.files[name])
        self.commit = digest.hexdigest()

    def is_lfs(self, name: str) -> bool:
        return Path(name).suffix.lower() in LFS_SUFFIXES

    def blob_id(self, name: str) -> str:
        data = self.files[name]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()

    def sibling(self, name: str) -> dict:
        size = len(self.files[name])
        entry: dict = {"rfilename": name, "size": size, "blobId": self.blob_id(name)}
        if self.is_lfs(name):
            entry["lfs"] = {"sha256": self.sha256(name), "size": size, "pointerSize": 134}
        return entry


class FakeHub:
    """The server, its repositories, the requests it saw, and the failures to stage.

    ``fail(name, "500")`` answers every GET of that file with a server error;
    ``fail(name, "cut")`` sends half the file and drops the connection, then answers
    the client's retries with a server error: the Hub went down.
    """

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.datasets: dict[str, FakeRepo] = {}
        self.readers: dict[str, set[str]] = {}  # token -> private/gated repos it may read
        self.requests: list[tuple[str, str]] = []  # (method, path without the query)
        # Upload side: token -> namespaces it may write; repos created (private or not);
        # LFS objects received by sha256; the commits, as (repo, header, paths).
        self.tokens: dict[str, set[str]] = {}
        self.private: dict[str, bool] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.commits: list[tuple[str, dict, list[str]]] = []
        self.cut_next_commit = False
        self.failures: dict[str, str] = {}
        self.hooks: dict[str, Callable[[], None]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-hub", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def add_folder(self, repo_id: str, folder: Path, gated: bool = False) -> FakeRepo:
        """Serve every file under ``folder`` (subfolders too) as the repository ``repo_id``."""
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        repo = FakeRepo(repo_id, files, gated=gated)
        self.repos[repo_id] = repo
        return repo

    def add_dataset(
        self,
        repo_id: str,
        files: dict[str, bytes | str],
        card_data: dict | None = None,
        gated: bool = False,
        private: bool = False,
    ) -> FakeRepo:
        """Serve ``files`` (path in the repository -> content) as the dataset ``repo_id``;
        ``card_data`` is the README's YAML metadata (``{"configs": [...]}``)."""
        data = {name: c.encode() if isinstance(c, str) else c for name, c in files.items()}
        repo = FakeRepo(repo_id, data, gated=gated, private=private, card_data=card_data)
        self.datasets[repo_id] = repo
        return repo

    def add_reader(self, token: str, *repo_ids: str) -> None:
        """Let ``token`` read these private or gated repositories."""
        self.readers.setdefault(token, set()).update(repo_ids)

    def add_token(self, token: str, *namespaces: str) -> None:
        """Accept ``token`` for writing repositories under ``namespaces``."""
        self.tokens[token] = set(namespaces)

    def cut_commit(self) -> None:
        self.cut_next_commit = True

    def fail(self, name: str, mode: str) -> None:
        assert mode in ("500", "cut"), mode
        self.failures[name] = mode

    def on_fetch(self, name: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the server thread when the client GETs ``name``, before the answer."""
        self.hooks[name] = hook

    def fetched(self, method: str = "GET") -> list[str]:
        """File names the client asked for with ``method`` on /resolve/, in order."""
        return [
            unquote(m["file"])
            for seen, path in self.requests
            if seen == method and (m := RESOLVE.match(path) or DATASET_RESOLVE.match(path))
        ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the Hub; every answer has a length
    server: ThreadingHTTPServer

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test asserts on hub.requests instead

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_POST(self) -> None:
        self._receive()

    def do_PUT(self) -> None:
        self._receive()

    # -- upload side --------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _writer(self, repo_id: str) -> bool:
        """True when the request's token may write ``repo_id``; else answers 401/403."""
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            self._error(401, "", "Invalid credentials in Authorization header", True)
            return False
        if repo_id.split("/")[0] not in self.hub.tokens[token]:
            self._error(
                403, "", "You don't have the rights to create a model under this namespace", True
            )
            return False
        return True

    def _receive(self) -> None:
        path = urlsplit(self.path).path
        self.hub.requests.append((self.command, path))
        body = self._body()
        if self.command == "POST" and path == CREATE_REPO:
            self._create_repo(json.loads(body))
        elif self.command == "POST" and path == VALIDATE_YAML:
            self._json(200, {"errors": [], "warnings": []})
        elif self.command == "POST" and (m := PREUPLOAD.match(path)):
            self._preupload(unquote(m["repo"]), json.loads(body))
        elif self.command == "POST" and (m := LFS_BATCH.match(path)):
            self._lfs_batch(unquote(m["repo"]), json.loads(body))
        elif self.command == "PUT" and (m := LFS_UPLOAD.match(path)):
            if hashlib.sha256(body).hexdigest() != m["oid"]:
                self._error(400, "", "sha256 mismatch", True)
                return
            self.hub.lfs_objects[m["oid"]] = body
            self._json(200, {})
        elif self.command == "POST" and (m := COMMIT.match(path)):
            self._commit(unquote(m["repo"]), body)
        else:
            self._error(404, "", "Not Found", True)

    def _create_repo(self, payload: dict) -> None:
        repo_id = f"{payload.get('organization') or 'me'}/{payload['name']}"
        if not self._writer(repo_id):
            return
        if repo_id in self.hub.repos:  # the Hub's 409 names the repository's URL
            url = f"{self.hub.url}/{repo_id}"
            self._error(409, "", "You already created this model repo", True, extra={"url": url})
            return
        self.hub.repos[repo_id] = FakeRepo(repo_id, {})
        self.hub.private[repo_id] = payload.get("visibility") == "private"
        self._json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id})

    def _preupload(self, repo_id: str, payload: dict) -> None:
        if not self._writer(repo_id) or self._repo_at(repo_id, "main", True) is None:
            return
        files = [
            {
                "path": f["path"],
                "uploadMode": "lfs"
                if Path(f["path"]).suffix.lower() in LFS_SUFFIXES
                else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in payload["files"]
        ]
        self._json(200, {"files": files})

    def _lfs_batch(self, repo_id: str, payload: dict) -> None:
        if not self._writer(repo_id):
            return
        objects = [
            {
                "oid": o["oid"],
                "size": o["size"],
                "authenticated": True,
                "actions": {"upload": {"href": f"{self.hub.url}/lfs-upload/{repo_id}/{o['oid']}"}},
            }
            for o in payload["objects"]
        ]
        self._json(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo_id: str, body: bytes) -> None:
        if self.hub.cut_next_commit:
            self.hub.cut_next_commit = False
            self.close_connection = True
            return  # no answer: the client sees the connection drop
        if not self._writer(repo_id) or (repo := self._repo_at(repo_id, "main", True)) is None:
            return
        import base64

        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        files = dict(repo.files)
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.hub.lfs_objects:
                    self._error(400, "", f"LFS object {value['oid']} was not uploaded", True)
                    return
                files[value["path"]] = self.hub.lfs_objects[value["oid"]]
        updated = FakeRepo(repo_id, files)
        self.hub.repos[repo_id] = updated
        self.hub.commits.append((repo_id, header, sorted(files)))
        self._json(
            200,
            {
                "commitUrl": f"{self.hub.url}/{repo_id}/commit/{updated.commit}",
                "commitOid": updated.commit,
                "pullRequestUrl": None,
            },
        )

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        self.hub.requests.append((self.command, path))
        if self.command == "GET" and (m := MODEL_INFO.match(path)):
            self._model_info(unquote(m["repo"]), unquote(m["rev"] or "main"))
        elif self.command == "GET" and (m := DATASET_INFO.match(path)):
            self._dataset_info(unquote(m["repo"]), unquote(m["rev"] or "main"))
        elif m := DATASET_RESOLVE.match(path):
            repo = self._dataset_at(unquote(m["repo"]), unquote(m["rev"]), send_body)
            if repo is not None:
                self._send_file(repo, unquote(m["file"]), send_body)
        elif m := RESOLVE.match(path):
            self._resolve(unquote(m["repo"]), unquote(m["rev"]), unquote(m["file"]), send_body)
        else:
            self._error(404, "", "Not Found", send_body)

    def _repo_at(self, repo_id: str, revision: str, send_body: bool) -> FakeRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found", send_body)
        elif revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, send_body)
        else:
            return repo
        return None

    def _model_info(self, repo_id: str, revision: str) -> None:
        # Like the Hub, a gated repository's metadata is public; only its files are not.
        repo = self._repo_at(repo_id, revision, send_body=True)
        if repo is None:
            return
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": repo.commit,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": ["transformers", "safetensors"],
            "siblings": [repo.sibling(name) for name in sorted(repo.files)],
        }
        body = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _may_read(self, repo_id: str) -> bool:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return repo_id in self.hub.readers.get(token, set())

    def _dataset_at(self, repo_id: str, revision: str, send_body: bool) -> FakeRepo | None:
        repo = self.hub.datasets.get(repo_id)
        if repo is None or (repo.private and not self._may_read(repo_id)):
            self._error(401, "RepoNotFound", "Repository not found", send_body)
        elif revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, send_body)
        else:
            return repo
        return None

    def _dataset_info(self, repo_id: str, revision: str) -> None:
        repo = self._dataset_at(repo_id, revision, send_body=True)
        if repo is None:
            return
        self._json(
            200,
            {
                "id": repo_id,
                "sha": repo.commit,
                "private": repo.private,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "tags": [],
                "cardData": repo.card_data or {},
                "siblings": [repo.sibling(name) for name in sorted(repo.files)],
            },
        )

    def _resolve(self, repo_id: str, revision: str, name: str, send_body: bool) -> None:
        repo = self._repo_at(repo_id, revision, send_body)
        if repo is None:
            return
        self._send_file(repo, name, send_body)

    def _send_file(self, repo: FakeRepo, name: str, send_body: bool) -> None:
        repo_id = repo.repo_id
        if repo.gated and not self._may_read(repo_id):
            self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted.", send_body)
            return
        if name not in repo.files:
            self._error(404, "EntryNotFound", "Entry not found", send_body, commit=repo.commit)
            return
        data = repo.files[name]
        if send_body and name in self.hub.hooks:
            self.hub.hooks[name]()
        failure = self.hub.failures.get(name) if send_body else None
        if failure == "cut":
            self.hub.failures[name] = "500"  # whatever the client tries next fails
        elif failure == "500":
            self._error(500, "", "Internal Error", send_body)
            return
        resumed = self.headers.get("Range")
        start = int(re.fullmatch(r"bytes=(\d+)-", resumed)[1]) if resumed else 0
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if repo.is_lfs(name):
            self.send_header("ETag", f'"{repo.sha256(name)}"')
            self.send_header("X-Linked-Etag", f'"{repo.sha256(name)}"')
            self.send_header("X-Linked-Size", str(len(data)))
        else:
            self.send_header("ETag", f'"{repo.blob_id(name)}"')
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not send_body:
            return
        if failure == "cut":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        send_body: bool,
        commit: str = "",
        extra: dict | None = None,
    ) -> None:
        body = json.dumps({"error": message, **(extra or {})}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def write_tiny_model(folder: Path, tokenizer_dir: Path) -> Path:
    """A real, loadable Llama model of a few MB in ``folder``, plus files a download must skip.

    Weights in safetensors, the tokenizer of the model in ``tokenizer_dir``, and beside
    them what a Hub repository often holds too: a pickle checkpoint, model code, a README
    and a file in a subfolder.
    """
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, folder / name)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "modeling_tiny.py").write_text("raise SystemExit('model code must never run')\n")
    (folder / "README.md").write_text("# tiny\n\nA test model.\n")
    (folder / "original").mkdir(exist_ok=True)
    (folder / "original" / "params.json").write_text('{"dim": 16}\n')
    return folder
