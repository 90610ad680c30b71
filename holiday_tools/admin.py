"""Restate's admin API, as the tools read it: JSON over HTTP, SQL introspection, a bearer token, TLS.

One client for every command that looks at Restate (`holiday audit`, `holiday prune`), so each
sends the token the same way, waits out the same brief 5xx answers and names the same URL
when it cannot look.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

# A cluster whose partitions are moving (a node just restarted) answers 5xx for a moment.
PATIENCE_S = 10.0


class AdminError(RuntimeError):
    """The admin API could not be asked, or did not answer as the admin API does.

    The message names the URL; `reason` is the same without it, for callers that name it themselves.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Restate's admin API at {url}: {reason}")
        self.reason = reason


class RestateAdmin:
    """Restate's admin API at `url`, with the token of a deployment that wants one."""

    def __init__(
        self, url: str, token: str | None = None, insecure: bool = False, patience_s: float = PATIENCE_S
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, headers=headers, verify=not insecure, timeout=30)
        self.patience_s = patience_s

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RestateAdmin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, path: str, json: Any = None) -> Any:
        """The decoded JSON answer (None for an empty one); AdminError for anything but a 2xx."""
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                response = self._client.request(method, path, json=json)
            except httpx.HTTPError as err:
                why = str(err) or type(err).__name__
                raise AdminError(self.url, f"cannot reach it: {why}") from err
            if response.status_code < 500 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if response.status_code >= 300:
            raise AdminError(self.url, f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json() if response.content else None
        except ValueError as err:
            raise AdminError(self.url, f"{method} {path} answered something other than JSON") from err

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a SQL introspection query (sys_invocation, sys_deployment, ...)."""
        answer = self.call("POST", "/query", {"query": sql})
        if not isinstance(answer, dict) or not isinstance(answer.get("rows"), list):
            raise AdminError(self.url, "/query answered without rows: is this Restate's admin API?")
        rows: list[dict[str, Any]] = answer["rows"]
        return rows

    def deployments(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/deployments")["deployments"])

    def services(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/services")["services"])

    def delete_deployment(self, deployment_id: str) -> None:
        """Remove a deployment; Restate 1.7 removes one only by force, which is why callers check its pins first."""
        self.call("DELETE", f"/deployments/{quote(deployment_id, safe='')}?force=true")
