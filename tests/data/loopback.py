"""A loopback HTTP server for download tests: serves bytes, honours ``Range``, can drop a connection."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalbench.data import download as dl


@dataclass
class Server:
    """What the loopback server serves and what it saw.

    Attributes:
        base: ``http://127.0.0.1:PORT``.
        files: Response bodies by path (without the leading slash).
        cut_first: Path → bytes to send before dropping the connection, applied
            to the next request of that path only (a simulated interrupt).
        ignore_range: Answer every request with 200 and the whole body.
        max_requests: Requests beyond this get HTTP 410, so a retry loop cannot spin.
        log: One ``(path, Range header or None, body bytes sent)`` per request.
    """

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    cut_first: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    max_requests: int = 30
    log: list[tuple[str, str | None, int]] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def sent(self) -> int:
        return sum(n for _, _, n in self.log)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        name, rng = self.path.lstrip("/"), self.headers.get("Range")
        body = state.files.get(name)
        if len(state.log) >= state.max_requests or body is None:
            state.log.append((name, rng, 0))  # logged before answering: the client may check the log at once
            self.send_error(410 if body is not None else 404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                state.log.append((name, rng, 0))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if name in state.cut_first:
            payload = payload[: state.cut_first.pop(name)]
            self.close_connection = True
        state.log.append((name, rng, len(payload)))
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def loopback_server() -> Iterator[Server]:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) in a daemon thread, shut down on exit."""
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def no_waits_no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bypass any configured HTTP proxy for 127.0.0.1 and skip the retry backoff."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.setattr(dl, "BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(dl, "TIMEOUT_SECONDS", 10.0)
