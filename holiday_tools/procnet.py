"""Which local processes serve a Restate ingress, read from /proc, so that `holiday bench` can count their CPU.

An ingress the bench did not start itself (`--ingress`, such as a second local stack that runs the
TypeScript original) has no process handles the bench could ask. When it is on loopback its
processes are still on this machine: its restate-server is the process that listens on the
ingress port, and its services are the processes that listen on the ports of the deployments
which that restate-server's admin API lists. Linux says who listens where in /proc/net/tcp(6),
and which process holds which socket in /proc/<pid>/fd: no tool to install (ss, lsof), and no
root for one's own processes. Anything that cannot be found raises `NotFound`, which says why,
so the bench can print one line and carry on without CPU figures for that ingress.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

PROC = Path("/proc")
LISTEN = "0A"  # the TCP state of a listening socket, as /proc/net/tcp writes it
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class NotFound(Exception):
    """Why the processes behind an ingress cannot be found (a remote host, Lambda functions, another user's)."""


@dataclass(frozen=True)
class Served:
    """The processes a trip through one ingress costs CPU in: its restate-server, and its services."""

    restate: frozenset[int]
    services: frozenset[int]


def listening_sockets(text: str) -> dict[int, int]:
    """Socket inode -> port, for each listening socket in the text of /proc/net/tcp or /proc/net/tcp6.

    A line reads `sl local_address rem_address st ... uid timeout inode ...`, the address as hex
    `IP:PORT`; the first line is the header.
    """
    found: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == LISTEN:
            found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


@dataclass(frozen=True)
class Listeners:
    """Who listens on which TCP port at one moment: each port and the processes holding a socket on it.

    A forking server (granian, nginx) has the same socket in its parent and its workers: all are listed.
    """

    pids_by_port: dict[int, frozenset[int]]

    @classmethod
    def read(cls, proc: Path = PROC) -> Listeners:
        ports: dict[int, int] = {}
        for table in ("tcp", "tcp6"):
            try:
                ports.update(listening_sockets((proc / "net" / table).read_text()))
            except OSError:
                continue  # no IPv6 on this machine, say
        if not ports and not (proc / "net" / "tcp").exists():
            raise NotFound(f"{proc}/net/tcp cannot be read (not Linux?)")
        by_port: dict[int, set[int]] = {}
        for inode, pids in _socket_holders(proc, ports.keys()).items():
            by_port.setdefault(ports[inode], set()).update(pids)
        return cls({port: frozenset(pids) for port, pids in by_port.items()})

    def pids(self, port: int) -> frozenset[int]:
        return self.pids_by_port.get(port, frozenset())

    def ports(self, pids: Iterable[int]) -> list[int]:
        """The ports these processes listen on, in order."""
        wanted = set(pids)
        return sorted(port for port, holders in self.pids_by_port.items() if holders & wanted)


def _socket_holders(proc: Path, inodes: Iterable[int]) -> dict[int, set[int]]:
    """Socket inode -> the processes with a file descriptor on it. Those we may not read are left out."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    holders: dict[int, set[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        for target in _fd_targets(entry / "fd"):
            if (inode := wanted.get(target)) is not None:
                holders.setdefault(inode, set()).add(int(entry.name))
    return holders


def _fd_targets(fds: Path) -> list[str]:
    """What a process's file descriptors point at; none for another user's process, or one that has ended."""
    try:
        names = os.listdir(fds)
    except OSError:
        return []
    targets = []
    for name in names:
        try:
            targets.append(os.readlink(fds / name))
        except OSError:
            continue  # closed since it was listed (the listing's own, for this process)
    return targets


def discover(ingress_url: str, timeout_s: float = 2.0, proc: Path = PROC) -> Served:
    """restate-server and the services behind a loopback ingress, or NotFound saying why not.

    restate-server's admin API is the one of its other ports that answers GET /deployments; the
    services are whatever listens on the ports of the deployments it lists.
    """
    host, port = _loopback(ingress_url, "the ingress")
    listeners = Listeners.read(proc)
    restate = listeners.pids(port)
    if not restate:
        raise NotFound(f"no process bench may inspect listens on port {port}")
    admin = [p for p in listeners.ports(restate) if p != port]
    deployments = _deployments(host, admin, timeout_s, _name(proc, min(restate)))
    services: set[int] = set()
    for uri in deployed_uris(deployments):
        _, service_port = _loopback(uri, "its deployment")
        if not (pids := listeners.pids(service_port)):
            raise NotFound(f"no process bench may inspect listens on its deployment {uri}")
        services |= pids
    return Served(frozenset(restate), frozenset(services))


def _loopback(url: str, what: str) -> tuple[str, int]:
    """The host and port of an http(s) URL on this machine; NotFound for any other."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or host not in LOOPBACK:
        raise NotFound(f"{what} {url} is not on this machine")
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def _deployments(host: str, ports: list[int], timeout_s: float, server: str) -> list[dict[str, Any]]:
    """The deployments listed by the admin API among `ports`: the first that answers GET /deployments."""
    netloc = f"[{host}]" if ":" in host else host
    for port in ports:
        try:
            body = httpx.get(f"http://{netloc}:{port}/deployments", timeout=timeout_s).json()
        except (httpx.HTTPError, ValueError):
            continue  # restate-server's node-to-node port, say
        if isinstance(body, dict) and isinstance(body.get("deployments"), list):
            return [d for d in body["deployments"] if isinstance(d, dict)]
    raise NotFound(f"{server} listens there, without a Restate admin API")


def deployed_uris(deployments: list[dict[str, Any]]) -> list[str]:
    """The URIs of the deployments that serve the newest revision of some service.

    A deployment registered again with `force` replaces an older one, which stays listed with its
    older revisions; its process may be long gone, and it serves nothing, so it is left out.
    A Lambda function (an ARN) is no process here: NotFound.
    """
    newest: dict[str, int] = {}
    for name, revision in (pair for d in deployments for pair in _revisions(d)):
        newest[name] = max(newest.get(name, 0), revision)
    current = [d for d in deployments if any(revision == newest[name] for name, revision in _revisions(d))]
    if not current:
        raise NotFound("its admin API lists no deployment")
    uris = []
    for deployment in current:
        if not isinstance(uri := deployment.get("uri"), str):
            raise NotFound("its deployments are Lambda functions (ARNs)")
        uris.append(uri)
    return uris


def _revisions(deployment: dict[str, Any]) -> list[tuple[str, int]]:
    """Each service of a deployment, and its revision."""
    services = deployment.get("services")
    return [
        (s["name"], s["revision"])
        for s in (services if isinstance(services, list) else [])
        if isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("revision"), int)
    ]


def _name(proc: Path, pid: int) -> str:
    """`restate-server (pid 123)`: the process as `ps` names it."""
    try:
        command = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        command = "the process"
    return f"{command} (pid {pid})"
