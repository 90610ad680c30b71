"""The versions of the local Lambda runtime's functions: code uploaded as zips, published versions, kept on disk.

As on Lambda, `$LATEST` is the code a function runs unless told otherwise, and
publishing freezes it as a numbered version that later uploads do not touch.
That is what lets a test deploy new code beside the old and watch Restate keep
invoking the version an invocation is pinned to. Each function starts with
version 1 (and `$LATEST`) = the handler on the project's own import path; an
upload is unpacked into a directory named by its hash, which the workers of the
versions that run it put first on `sys.path`.

With a state directory the versions survive a restart of the runtime (the
local stack restarts it in crash tests), as published versions on Lambda do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
LATEST = "$LATEST"
STATE_FILE = "functions.json"
FIRST = "1"  # the project's own code, published at start


class ApiError(Exception):
    """A request Lambda refuses, with the status and error type Lambda answers it with."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def function_arn(region: str, name: str, qualifier: str | None) -> str:
    arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
    return arn if qualifier is None else f"{arn}:{qualifier}"


def invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterValueException", message)


@dataclass(frozen=True)
class Version:
    """The code of `$LATEST` or of one published version, and what Lambda reports about it."""

    code_dir: str | None  # relative to the runtime's code root; None: the project's own import path
    code_sha256: str  # base64 of the SHA-256 digest, as Lambda's CodeSha256
    code_size: int
    last_modified: str
    description: str = ""


@dataclass
class Function:
    """One function's `$LATEST` and published versions (ascending), and the highest number ever given."""

    latest: Version
    published: dict[str, Version]
    last_number: int

    def publish(self, description: str) -> str:
        """Publish `$LATEST`, unless the newest version already has its code: that version's number."""
        if self.published:
            newest = list(self.published)[-1]
            if self.published[newest].code_sha256 == self.latest.code_sha256:
                return newest
        self.last_number += 1  # never reused, even after a delete
        number = str(self.last_number)
        self.published[number] = replace(self.latest, last_modified=_now(), description=description)
        return number

    def find(self, qualifier: str) -> Version | None:
        return self.latest if qualifier == LATEST else self.published.get(qualifier)

    def as_json(self) -> dict[str, Any]:
        versions = {LATEST: self.latest, **self.published}
        return {"last_number": self.last_number, "versions": {n: asdict(v) for n, v in versions.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Function:
        versions = {number: Version(**fields) for number, fields in data["versions"].items()}
        latest = versions.pop(LATEST)
        return cls(latest, dict(sorted(versions.items(), key=lambda item: int(item[0]))), data["last_number"])


class VersionStore:
    """The functions' versions and their code on disk; not thread-safe, the runtime holds a lock around it.

    Without `state_dir` the code goes to a temporary directory removed by `close`, and nothing persists.
    """

    def __init__(self, handlers: dict[str, str], region: str, state_dir: Path | None) -> None:
        self.region = region
        self.state_file = state_dir / STATE_FILE if state_dir else None
        self.root = state_dir or Path(tempfile.mkdtemp(prefix="locallambda-"))
        (self.root / "code").mkdir(parents=True, exist_ok=True)
        saved = self._load()
        # Functions this runtime is not given keep their versions on disk, for a runtime that is.
        self._others = {name: data for name, data in saved.items() if name not in handlers}
        self.functions = {
            name: Function.from_json(saved[name]) if name in saved else _fresh(handler)
            for name, handler in handlers.items()
        }
        self._save()

    def function(self, name: str, qualifier: str | None = None) -> Function:
        if name not in self.functions:
            raise self.not_found(name, qualifier)
        return self.functions[name]

    def version(self, name: str, qualifier: str) -> Version:
        found = self.function(name, qualifier).find(qualifier)
        if found is None:
            raise self.not_found(name, qualifier)
        return found

    def not_found(self, name: str, qualifier: str | None) -> ApiError:
        """Lambda's 404, naming the function (and version) by ARN as Lambda does."""
        return ApiError(
            404, "ResourceNotFoundException", f"Function not found: {function_arn(self.region, name, qualifier)}"
        )

    def code_path(self, version: Version) -> str | None:
        """The directory a worker puts first on `sys.path`, or None for the project's own code."""
        return None if version.code_dir is None else str(self.root / version.code_dir)

    def unpack(self, data: bytes) -> Version:
        """Unpack a zip into the code directory named by its hash (once per content); safe without the lock."""
        digest = hashlib.sha256(data)
        code_dir = f"code/{digest.hexdigest()}"
        target = self.root / code_dir
        if not target.exists():
            unpacking = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=self.root / "code"))
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(unpacking)
                unpacking.rename(target)
            except zipfile.BadZipFile as err:
                raise invalid(f"Could not unzip uploaded file: {err}") from None
            except OSError:
                if not target.exists():  # else the same code, unpacked at the same time by another request
                    raise
            finally:
                shutil.rmtree(unpacking, ignore_errors=True)
        return Version(code_dir, base64.b64encode(digest.digest()).decode(), len(data), _now())

    def set_latest(self, name: str, version: Version) -> None:
        self.function(name).latest = version
        self._save()

    def publish(self, name: str, description: str = "", code_sha256: str | None = None) -> str:
        function = self.function(name)
        if code_sha256 is not None and code_sha256 != function.latest.code_sha256:
            raise ApiError(
                412,
                "PreconditionFailedException",
                f"CodeSha256 ({code_sha256}) is different from current CodeSha256 in $LATEST "
                f"({function.latest.code_sha256}). Please try again with the current CodeSha256.",
            )
        number = function.publish(description)
        self._save()
        return number

    def delete(self, name: str, qualifier: str | None) -> None:
        function = self.function(name, qualifier)
        if qualifier is None:
            raise invalid(
                "The local Lambda runtime does not delete whole functions: delete a version "
                "(Qualifier), or restart the stack instead"
            )
        if qualifier == LATEST:
            raise invalid("$LATEST version cannot be deleted without deleting the function.")
        if function.published.pop(qualifier, None) is None:
            raise self.not_found(name, qualifier)
        self._save()

    def close(self) -> None:
        """Remove the code of a runtime that keeps no state."""
        if self.state_file is None:
            shutil.rmtree(self.root, ignore_errors=True)

    def _load(self) -> dict[str, Any]:
        if self.state_file is None:
            return {}
        with contextlib.suppress(FileNotFoundError):
            saved: dict[str, Any] = json.loads(self.state_file.read_text())
            return saved
        return {}

    def _save(self) -> None:
        """Write every function's versions whole: a crash leaves the old file or the new, never half of one."""
        if self.state_file is None:
            return
        state = {**self._others, **{name: function.as_json() for name, function in self.functions.items()}}
        writing = self.state_file.with_suffix(".writing")
        writing.write_text(json.dumps(state, indent=2))
        os.replace(writing, self.state_file)


def _fresh(handler: str) -> Function:
    """A function as the runtime starts it: version 1 and `$LATEST` run the project's own code."""
    own = Version(None, base64.b64encode(hashlib.sha256(handler.encode()).digest()).decode(), 0, _now())
    return Function(own, {FIRST: own}, int(FIRST))


def _now() -> str:
    """The time in Lambda's LastModified format, e.g. 2026-12-07T10:00:00.000+0000."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
