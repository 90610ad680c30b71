"""Serve all four services over HTTP (h2c and HTTP/1.1 on one port) with hypercorn.

This is how the local stack runs them; on AWS each service is its own Lambda.
`python -m holiday.server --port 9080` starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config
from restate.server import install_shutdown_hook

from holiday import nullsaga
from holiday.functions import cars, flights, payments, trips

# The same services the four Lambda functions serve, here in one process, plus the
# null saga that `holiday bench` measures as its baseline.
SERVICES = [*trips.SERVICES, *flights.SERVICES, *cars.SERVICES, *payments.SERVICES, *nullsaga.SERVICES]

app: Any = restate.app(services=SERVICES)


def configure_logging(level: str = "INFO") -> None:
    """One line per event, with the time, so a trip's steps can be followed."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s")


def hypercorn_config(host: str, port: int) -> Config:
    """Settings sized for Restate's many concurrent streams on few connections."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.h2_max_concurrent_streams = 1000
    config.keep_alive_timeout = 3600
    # hypercorn closes a connection after 1,000 requests by default. Every Restate
    # invocation is one HTTP/2 stream on a few long-lived connections, so that limit
    # was reached about every 140 trips. restate-server then waited about 30 s on the
    # closing connection before it retried, which put a 30 s stall into the p99.
    config.keep_alive_max_requests = 2**62
    config.graceful_timeout = 2
    config.accesslog = None
    config.loglevel = "ERROR"  # not its warning that Restate's app has no ASGI lifespan
    return config


async def _serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # The Restate app claims SIGTERM (to drain invocations); join its hook rather than replace it.
    install_shutdown_hook(loop, stop.set, signal.SIGTERM)
    logging.getLogger("holiday.server").info("serving trips, flights, cars and payments on http://%s:%d", host, port)
    await serve(app, hypercorn_config(host, port), shutdown_trigger=stop.wait)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9080)
    args = parser.parse_args(argv)
    configure_logging()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
