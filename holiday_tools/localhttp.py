"""The small HTTP servers of the local tools (the fault proxy, the local Lambda runtime)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    """A threading server that does not print a traceback when a caller hangs up mid-request.

    Callers are killed on purpose here (crash tests, chaos); a reset connection is expected.
    """

    daemon_threads = True
    # Connections the kernel holds until the accept loop takes them. socketserver's 5
    # overflows under a burst (100 trips at once are hundreds of Lambda invocations
    # arriving together), and an overflowed connect is retried only after a second or
    # more. The kernel caps it at net.core.somaxconn; an unused backlog costs nothing.
    request_queue_size = socket.SOMAXCONN

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and no Nagle delay."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and delayed ACKs add 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass
