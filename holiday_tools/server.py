"""Serve all four services over HTTP (h2c and HTTP/1.1 on one port) with granian.

This is how the local stack runs them; on AWS each service is its own Lambda.
`python -m holiday_tools.server --port 9080` starts it.

granian does the HTTP/2 framing in Rust, in this process and on this event
loop (uvloop). hypercorn, which served here before, spent about 40 % of the
services' CPU on HTTP/2 bookkeeping in pure Python; see the README's
performance section for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import restate
import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP2Settings
from granian.log import LogLevels
from granian.server.embed import Server
from restate.server import install_shutdown_hook

from holiday.functions import cars, flights, payments, trips
from holiday_tools import nullsaga

# The same services the four Lambda functions serve, here in one process, plus the
# null saga that `holiday bench` measures as its baseline.
SERVICES = [*trips.SERVICES, *flights.SERVICES, *cars.SERVICES, *payments.SERVICES, *nullsaga.SERVICES]

app: Any = restate.app(services=SERVICES)


def configure_logging(level: str = "INFO") -> None:
    """One line per event, with the time, so a trip's steps can be followed."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s")


def granian_server(host: str, port: int) -> Server:
    """granian, embedded, sized for Restate's many concurrent streams on few connections."""
    return Server(
        app,
        address=host,
        port=port,
        # No ASGI lifespan: the Restate app has none, and granian would log that it errored.
        interface=Interfaces.ASGINL,
        # h2c for restate-server, HTTP/1.1 for health checks and curl.
        http=HTTPModes.auto,
        websockets=False,
        http2_settings=HTTP2Settings(max_concurrent_streams=1000),
        log_level=LogLevels.error,
    )


async def _serve(host: str, port: int) -> None:
    server = granian_server(host, port)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, server.stop)
    # The Restate app claims SIGTERM (to drain invocations); join its hook rather than replace it.
    install_shutdown_hook(loop, server.stop, signal.SIGTERM)
    logging.getLogger("holiday_tools.server").info(
        "serving trips, flights, cars and payments on http://%s:%d", host, port
    )
    await server.serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9080)
    args = parser.parse_args(argv)
    configure_logging()
    uvloop.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
