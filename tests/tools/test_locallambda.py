"""The local Lambda runtime, as the AWS SDK sees it: invoke, errors, timeouts, workers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from holiday_tools.devstack import HOST, Ports
from holiday_tools.locallambda.runtime import LocalLambda
from holiday_tools.locallambda.spec import FunctionSpec
from tests.support import PROJECT_DIR, invoke, lambda_client


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalLambda]:
    specs = [FunctionSpec(name, f"tests.lambda_handlers.{name}") for name in ("echo", "boom", "die", "missing")]
    specs.append(FunctionSpec("slow", "tests.lambda_handlers.slow", timeout=1.0, max_workers=3))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)}
    local = LocalLambda(specs, HOST, Ports.free().functions, "eu-west-1", env=env)
    threading.Thread(target=local.serve_forever, daemon=True).start()
    yield local
    local.shutdown()


@pytest.fixture(scope="module")
def client(runtime: LocalLambda) -> Any:
    return lambda_client(runtime)


def test_invoke_by_version_arn_or_name_runs_the_handler_on_the_main_thread(client: Any) -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:echo:1"
    error, result = invoke(client, arn, {"path": "/discover"})
    assert error is None
    assert result["event"] == {"path": "/discover"}
    assert (result["function"], result["arn"]) == ("echo", arn)
    assert result["main_thread"]
    assert result["time_left"]
    assert invoke(client, arn)[1]["pid"] == result["pid"]  # the warm worker is reused
    latest = invoke(client, "echo")[1]  # unqualified: $LATEST, in workers of its own, as on Lambda
    assert latest["arn"] == arn.removesuffix(":1") + ":$LATEST"
    assert latest["pid"] != result["pid"]


def test_an_exception_is_an_unhandled_function_error_and_the_worker_lives_on(client: Any, runtime: LocalLambda) -> None:
    error, payload = invoke(client, "boom")
    assert error == "Unhandled"
    assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "boom")
    assert payload["stackTrace"]
    invoke(client, "boom")
    assert runtime.stats()["boom"]["cold_starts"] == 1


def test_a_timeout_kills_the_worker_and_the_next_call_gets_a_new_one(client: Any) -> None:
    error, payload = invoke(client, "slow", {"seconds": 3})
    assert error == "Unhandled"
    assert payload["errorMessage"].endswith("Task timed out after 1.00 seconds")
    first = invoke(client, "slow", {"seconds": 0})[1]
    assert invoke(client, "slow", {"seconds": 0})[1] == first


def test_a_worker_that_exits_is_reported_as_lambda_does(client: Any) -> None:
    error, payload = invoke(client, "die")
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith("Runtime exited with error: exit status 3")


def test_a_handler_that_fails_to_import_fails_the_invocation_as_lambda_does(client: Any) -> None:
    error, payload = invoke(client, "missing")  # tests.lambda_handlers has no `missing`
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith("Runtime exited with error: exit status 1")


def test_concurrent_invocations_get_their_own_workers_up_to_the_limit(client: Any, runtime: LocalLambda) -> None:
    with ThreadPoolExecutor(5) as pool:
        pids = list(pool.map(lambda _: invoke(client, "slow", {"seconds": 0.3})[1], range(5)))
    assert len(set(pids)) <= 3  # max_workers: the other calls waited for a free worker
    assert len(set(pids)) >= 2  # and more than one worker served them


def test_an_unknown_function_is_resource_not_found(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="nope", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_burst_of_connections_is_queued_and_answered_not_refused(runtime: LocalLambda) -> None:
    """Far more connections at once than socketserver's default backlog of 5.

    On loopback the kernel completes a connect at once while the listen backlog has
    room; past it the connect is dropped and only tried again a second later.
    """
    port = runtime.server.server_address[1]
    request = f"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\n{{}}"
    connections = []
    try:
        for _ in range(200):
            connections.append(socket.create_connection((HOST, port), timeout=0.5))
        for connection in connections:
            connection.settimeout(30)
            connection.sendall(request.encode())
        statuses = [connection.makefile("rb").readline() for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    assert statuses == [b"HTTP/1.1 200 OK\r\n"] * 200
