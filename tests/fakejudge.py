"""A fake OpenAI-compatible judge (``POST /v1/chat/completions``) on a local port.

It reads the expected answer and the reply out of the judge prompt it is sent and says
YES when the expected answer appears in the reply (case-insensitive), else NO. A wrong
bearer token gets 401; ``verdict`` forces every answer (e.g. "Maybe")."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "sk-test-judge"
_PARTS = re.compile(r"Expected answer:\n(.*?)\n\nModel's reply:\n(.*?)\n\nDoes", re.S)


class FakeJudge:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.verdict: str | None = None
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.requests.append(body)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                expected, reply = _PARTS.search(body["messages"][0]["content"]).groups()
                verdict = judge.verdict or (
                    "YES" if expected.strip().lower() in reply.lower() else "NO"
                )
                self._send(
                    200, {"choices": [{"message": {"role": "assistant", "content": verdict}}]}
                )

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
