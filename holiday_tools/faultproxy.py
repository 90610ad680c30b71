"""An HTTP proxy between the services and the AWS stand-in that can break on demand.

The local stack's services send their AWS calls through it when faults are
wanted (the tests, `holiday chaos`). It forwards every request unchanged,
except that it can:

- hold one request matching some byte strings until released, so a test can
  crash the services at an exact step;
- drop requests (close the connection unanswered), for all requests or only
  matching ones, until the fault is cleared: DynamoDB "unreachable".
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from holiday_tools.localhttp import Handler, QuietServer


@dataclass
class Hold:
    """Holds the first request whose body contains every one of `needles`."""

    needles: tuple[bytes, ...]
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    # Set once the held request, let through, has been answered upstream: (status, body).
    answered: threading.Event = field(default_factory=threading.Event)
    answer: tuple[int, bytes] | None = None

    def matches(self, body: bytes) -> bool:
        return not self.held.is_set() and all(n in body for n in self.needles)

    def wait_held(self, timeout: float = 20.0) -> None:
        if not self.held.wait(timeout):
            raise TimeoutError(f"no request with {self.needles} arrived within {timeout}s")

    def release(self) -> None:
        self.released.set()


@dataclass
class Fault:
    """Drops every request containing all of `needles` (all requests if none) until cleared."""

    needles: tuple[bytes, ...]
    dropped: int = 0
    active: bool = True

    def matches(self, body: bytes) -> bool:
        return self.active and all(n in body for n in self.needles)

    def clear(self) -> None:
        self.active = False


class FaultProxy:
    """Forwards to `upstream`; see the module docstring for what it can break."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = urlsplit(upstream)
        self.holds: list[Hold] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class ProxyHandler(Handler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if proxy._should_drop(body):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                hold = proxy._maybe_hold(body)
                status, headers, payload = proxy._forward(self.command, self.path, dict(self.headers), body)
                if hold is not None:
                    hold.answer = (status, payload)
                    hold.answered.set()
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the caller died while we held its request: that is the point

            do_GET = do_POST

        self.server = QuietServer((host, port), ProxyHandler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self, *needles: bytes) -> Hold:
        hold = Hold(needles)
        with self._lock:
            self.holds.append(hold)
        return hold

    def drop(self, *needles: bytes) -> Fault:
        """Start dropping matching requests (every request with no needles); `.clear()` ends it."""
        fault = Fault(needles)
        with self._lock:
            self.faults.append(fault)
        return fault

    def close(self) -> None:
        for hold in self.holds:
            hold.release()
        for fault in self.faults:
            fault.clear()
        self.server.shutdown()
        self.server.server_close()

    def _should_drop(self, body: bytes) -> bool:
        with self._lock:
            fault = next((f for f in self.faults if f.matches(body)), None)
            if fault is not None:
                fault.dropped += 1
        return fault is not None

    def _maybe_hold(self, body: bytes) -> Hold | None:
        with self._lock:
            hold = next((h for h in self.holds if h.matches(body)), None)
            if hold is not None:
                hold.held.set()
        if hold is not None:
            hold.released.wait(60)
        return hold

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()
