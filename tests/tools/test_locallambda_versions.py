"""Function versions in the local Lambda runtime, through boto3's Lambda client: new code beside the old.

The function's handler, `tests.lambda_handlers.version`, says which code answered; the
zips uploaded here hold a module of the same name that answers with their own marker.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from holiday_tools.devstack import HOST, Ports
from holiday_tools.locallambda.runtime import LocalLambda
from holiday_tools.locallambda.spec import FunctionSpec
from tests.support import PROJECT_DIR, poll

NAME = "versioned"
REGION = "eu-west-1"
ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{NAME}"
ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)}
# The zip's tests/lambda_handlers.py. With `started` in the event it waits (at most 10 s) for `release`.
ZIPPED_HANDLER = """
import os
import sys
import time
from pathlib import Path


def version(event, context):
    if "started" in event:
        Path(event["started"]).touch()
        deadline = time.monotonic() + 10
        while not Path(event["release"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return {
        "code": MARKER,
        "version": context.function_version,
        "env": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        "arn": context.invoked_function_arn,
        "holiday_imported": "holiday" in sys.modules,
    }
"""


def code_zip(marker: str) -> bytes:
    """A zip whose `tests.lambda_handlers.version` answers `marker`; the same marker gives the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in (("tests/__init__.py", ""), ("tests/lambda_handlers.py", ZIPPED_HANDLER)):
            archive.writestr(zipfile.ZipInfo(path, (2026, 12, 7, 10, 0, 0)), text.replace("MARKER", repr(marker)))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def lambda_client(port: int) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=f"http://{HOST}:{port}",
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
    )


@contextlib.contextmanager
def running(state_dir: Path | None) -> Iterator[LocalLambda]:
    spec = FunctionSpec(NAME, "tests.lambda_handlers.version", max_workers=2)
    local = LocalLambda([spec], HOST, Ports.free().functions, REGION, env=ENV, state_dir=state_dir)
    threading.Thread(target=local.serve_forever, daemon=True).start()
    try:
        yield local
    finally:
        local.shutdown()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalLambda]:
    with running(tmp_path / "state") as local:
        yield local


@pytest.fixture
def client(runtime: LocalLambda) -> Any:
    return lambda_client(runtime.server.server_address[1])


def invoke(client: Any, function: str, event: Any = None, **kwargs: Any) -> tuple[str, Any]:
    """(the version that ran, what the handler returned)."""
    response = client.invoke(FunctionName=function, Payload=json.dumps(event or {}).encode(), **kwargs)
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return response["ExecutedVersion"], payload


def refused(call: Callable[..., Any], **kwargs: Any) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a call that fails."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def workers(runtime: LocalLambda) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = httpx.get(f"http://{HOST}:{runtime.server.server_address[1]}/local/workers").json()
    return listed


def test_new_code_published_beside_version_1_runs_in_its_own_workers(client: Any, runtime: LocalLambda) -> None:
    assert invoke(client, f"{ARN}:1") == ("1", {"code": "project", "version": "1", "env": "1", "arn": f"{ARN}:1"})
    executed, old_latest = invoke(client, NAME)
    assert (executed, old_latest["code"]) == ("$LATEST", "project")
    [old_latest_pid] = [w["pid"] for w in workers(runtime) if w["version"] == "$LATEST"]

    code = code_zip("v2")
    published = client.update_function_code(FunctionName=NAME, ZipFile=code, Publish=True)
    assert published["Version"] == "2"
    assert published["FunctionArn"] == f"{ARN}:2"
    assert (published["CodeSha256"], published["CodeSize"]) == (sha256(code), len(code))
    assert published["Handler"] == "tests.lambda_handlers.version"
    assert published["Runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert (published["State"], published["LastUpdateStatus"], published["PackageType"]) == (
        "Active",
        "Successful",
        "Zip",
    )

    # The zip's module wins over the project's of the same name, and nothing imported `holiday` first.
    expected = {"code": "v2", "version": "2", "env": "2", "arn": f"{ARN}:2", "holiday_imported": False}
    assert invoke(client, f"{ARN}:2") == ("2", expected)
    assert invoke(client, NAME, Qualifier="2") == ("2", expected)
    assert invoke(client, f"{ARN}:1")[1]["code"] == "project"  # version 1 is untouched
    assert invoke(client, NAME)[1]["code"] == "v2"  # $LATEST runs the upload
    # $LATEST's workers with the old code end once idle.
    poll(lambda: [w["pid"] for w in workers(runtime)], lambda pids: old_latest_pid not in pids, "old $LATEST to end")

    stats = httpx.get(f"http://{HOST}:{runtime.server.server_address[1]}/local/stats").json()[NAME]
    counts = {number: counted["invocations"] for number, counted in stats["versions"].items()}
    assert counts == {"$LATEST": 2, "1": 2, "2": 2}
    assert stats["invocations"] == 6
    assert stats["cold_starts"] == 4  # version 1, old $LATEST, version 2, new $LATEST


def test_publish_makes_a_version_only_of_changed_code_and_never_reuses_a_number(client: Any) -> None:
    assert client.publish_version(FunctionName=NAME)["Version"] == "1"  # $LATEST is version 1's code

    code = code_zip("v2")
    updated = client.update_function_code(FunctionName=NAME, ZipFile=code)
    assert (updated["Version"], updated["FunctionArn"]) == ("$LATEST", f"{ARN}:$LATEST")
    assert refused(client.publish_version, FunctionName=NAME, CodeSha256=sha256(b"other"))[:2] == (
        412,
        "PreconditionFailedException",
    )
    published = client.publish_version(FunctionName=NAME, CodeSha256=sha256(code), Description="second")
    assert (published["Version"], published["Description"]) == ("2", "second")
    assert client.publish_version(FunctionName=NAME)["Version"] == "2"

    client.delete_function(FunctionName=NAME, Qualifier="2")
    client.update_function_code(FunctionName=NAME, ZipFile=code_zip("v3"))
    assert client.publish_version(FunctionName=NAME)["Version"] == "3"

    listed = client.list_versions_by_function(FunctionName=NAME)
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "1", "3"]
    assert [v["FunctionArn"] for v in listed["Versions"]] == [f"{ARN}:$LATEST", f"{ARN}:1", f"{ARN}:3"]
    assert "NextMarker" not in listed
    got = client.get_function(FunctionName=NAME, Qualifier="3")
    assert got["Configuration"] == listed["Versions"][2]
    assert got["Code"]["RepositoryType"] == "S3"
    assert client.get_function(FunctionName=f"{ARN}:1")["Configuration"]["CodeSize"] == 0  # the project's code


def test_a_deleted_version_finishes_what_runs_and_refuses_new_invocations(
    client: Any, runtime: LocalLambda, tmp_path: Path
) -> None:
    client.update_function_code(FunctionName=NAME, ZipFile=code_zip("v2"), Publish=True)
    started, release = tmp_path / "started", tmp_path / "release"
    with ThreadPoolExecutor(1) as pool:
        running_call = pool.submit(invoke, client, f"{ARN}:2", {"started": str(started), "release": str(release)})
        poll(started.exists, bool, "the invocation on version 2 to start")

        response = client.delete_function(FunctionName=NAME, Qualifier="2")
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
        status, code, message = refused(client.invoke, FunctionName=f"{ARN}:2", Payload=b"{}")
        assert (status, code) == (404, "ResourceNotFoundException")
        assert message == f"Function not found: {ARN}:2"
        assert [w["version"] for w in workers(runtime) if w["busy"]] == ["2"]

        release.touch()
        executed, answer = running_call.result(timeout=30)
        assert (executed, answer["code"]) == ("2", "v2")
    poll(lambda: workers(runtime), lambda listed: all(w["version"] != "2" for w in listed), "version 2's worker to end")
    assert invoke(client, f"{ARN}:1")[1]["code"] == "project"


def test_what_cannot_be_deleted_or_uploaded_is_refused_as_lambda_refuses_it(client: Any) -> None:
    delete = client.delete_function
    assert refused(delete, FunctionName=NAME)[:2] == (400, "InvalidParameterValueException")
    assert "restart the stack" in refused(delete, FunctionName=NAME)[2]
    assert refused(delete, FunctionName=NAME, Qualifier="$LATEST")[:2] == (400, "InvalidParameterValueException")
    assert refused(delete, FunctionName=NAME, Qualifier="9")[:2] == (404, "ResourceNotFoundException")
    assert refused(delete, FunctionName="nope", Qualifier="1")[:2] == (404, "ResourceNotFoundException")
    assert refused(client.invoke, FunctionName=f"{ARN}:7", Payload=b"{}")[:2] == (404, "ResourceNotFoundException")
    assert refused(client.list_versions_by_function, FunctionName="nope")[:2] == (404, "ResourceNotFoundException")

    update = client.update_function_code
    status, code, message = refused(update, FunctionName=NAME, S3Bucket="bucket", S3Key="code.zip")
    assert (status, code) == (400, "InvalidParameterValueException")
    assert "only as ZipFile" in message
    assert "S3Bucket" in message
    assert refused(update, FunctionName=NAME, ZipFile=b"not a zip")[:2] == (400, "InvalidParameterValueException")
    assert invoke(client, NAME)[1]["code"] == "project"  # nothing changed


def test_without_a_state_dir_uploaded_code_lives_as_long_as_the_runtime() -> None:
    with running(None) as local:
        client = lambda_client(local.server.server_address[1])
        client.update_function_code(FunctionName=NAME, ZipFile=code_zip("passing"))
        assert invoke(client, NAME)[1]["code"] == "passing"
        code_root = local.versions.root
        assert code_root.exists()
    assert not code_root.exists()


def test_a_runtime_killed_and_started_again_on_its_state_dir_serves_every_published_version(tmp_path: Path) -> None:
    port = Ports.free().functions
    argv = [sys.executable, "-m", "holiday_tools.locallambda", "--host", HOST, "--port", str(port), "--region", REGION]
    argv += ["--state-dir", str(tmp_path / "state"), f"--function={NAME}=tests.lambda_handlers.version"]
    client = lambda_client(port)

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)}, stdout=subprocess.DEVNULL)
        poll(lambda: _answers(port), bool, "the runtime to answer")
        return process

    process = start()
    try:
        for marker in ("v2", "v3"):
            client.update_function_code(FunctionName=NAME, ZipFile=code_zip(marker), Publish=True)
        client.delete_function(FunctionName=NAME, Qualifier="3")
        client.update_function_code(FunctionName=NAME, ZipFile=code_zip("unpublished"))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process = start()

        assert [v["Version"] for v in client.list_versions_by_function(FunctionName=NAME)["Versions"]] == [
            "$LATEST",
            "1",
            "2",
        ]
        assert invoke(client, f"{ARN}:2")[1]["code"] == "v2"
        assert invoke(client, f"{ARN}:1")[1]["code"] == "project"
        assert invoke(client, NAME)[1]["code"] == "unpublished"
        assert client.publish_version(FunctionName=NAME)["Version"] == "4"  # 3 stays used
    finally:
        process.kill()
        process.wait()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://{HOST}:{port}/local/stats", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
