"""Test helpers for outbound HTTP: a tiny local HTTP server that records every request it gets.

Tests use it as the attacker's server (it must stay empty) or as a fake upstream with canned answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    # Chunks sent one by one without a Content-Length (a stream whose size is not announced).
    chunks: Iterator[bytes] | None = None


class RecordingServer:
    """ThreadingHTTPServer on 127.0.0.1 and a free port. `routes` maps a path (no query) to a Reply or a
    function of the Recorded request returning one; anything else gets 404."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[str, Reply | Callable[[Recorded], Reply]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.recorder = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="recording-server"
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        recorder: RecordingServer = self.server.recorder  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        request = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        with recorder.lock:
            recorder.requests.append(request)
        route = recorder.routes.get(self.path.split("?", 1)[0])
        reply = (route(request) if callable(route) else route) or Reply(404, b"not found")
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunks is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for chunk in reply.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            pass  # the client stopped reading: what a size limit does
        self.close_connection = True

    do_GET = do_POST = do_HEAD = _handle
