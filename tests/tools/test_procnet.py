"""`holiday_tools.procnet`: finding, from /proc, the processes behind an ingress that bench did not start.

The discovery runs against real listening sockets opened here, on free ports: this test process
plays restate-server (an "ingress" socket, and an admin API that lists the deployments), and a
child process plays the services.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from holiday_tools.procnet import Listeners, NotFound, Served, deployed_uris, discover, listening_sockets
from tests.support import json_server

# Two listening sockets (127.0.0.1:8080 and 0.0.0.0:9070) and a connection, as Linux writes them; then one in tcp6.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0
   1: 00000000:236E 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C2A6 01 00000000:00000000 00:00000000 00000000  1000        0 4244 3 0 20 4 1 42 -1
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when \
retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2378 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 \
00000000  1000        0 5151 1 0 100 0 0 10 0
"""


def test_listening_sockets_are_read_from_proc_net_tcp_by_inode() -> None:
    assert listening_sockets(PROC_NET_TCP) == {4242: 8080, 4243: 9070}  # the connection (state 01) is no listener
    assert listening_sockets(PROC_NET_TCP6) == {5151: 9080}
    assert listening_sockets("") == {}


def test_a_socket_held_by_a_forking_server_and_its_worker_belongs_to_both(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(PROC_NET_TCP)  # no tcp6: a machine without IPv6
    for pid, inodes in {"100": [4242], "101": [4242, 4243], "102": []}.items():
        (tmp_path / pid / "fd").mkdir(parents=True)
        for fd, inode in enumerate(inodes, start=3):
            (tmp_path / pid / "fd" / str(fd)).symlink_to(f"socket:[{inode}]")
    (tmp_path / "self").mkdir()  # not a process
    listeners = Listeners.read(tmp_path)
    assert listeners.pids(8080) == {100, 101}
    assert listeners.pids(9070) == {101}
    assert listeners.pids(1) == frozenset()
    assert listeners.ports([101]) == [8080, 9070]


def test_only_the_deployments_serving_a_newest_revision_count() -> None:
    older = {"uri": "http://127.0.0.1:1/", "services": [{"name": "trips", "revision": 1}]}
    newer = {"uri": "http://127.0.0.1:2/", "services": [{"name": "trips", "revision": 2}]}
    other = {"uri": "http://localhost:3/", "services": [{"name": "cars", "revision": 1}]}
    # Registered again with force, the older deployment stays listed, serving nothing.
    assert deployed_uris([older, newer, other]) == ["http://127.0.0.1:2/", "http://localhost:3/"]
    with pytest.raises(NotFound, match=r"^its admin API lists no deployment$"):
        deployed_uris([])
    lambda_ = {"arn": "arn:aws:lambda:eu-central-1:123456789012:function:trips:1", "services": newer["services"]}
    with pytest.raises(NotFound, match=r"^its deployments are Lambda functions \(ARNs\)$"):
        deployed_uris([lambda_])


def listening() -> socket.socket:
    """A real socket listening on a free port of 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def services() -> Iterator[tuple[int, int]]:
    """A child process listening on a free port, as the services would: its pid and port."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(s.getsockname()[1], flush=True); sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    port = int(child.stdout.readline())
    yield child.pid, port
    child.kill()
    child.wait()


@pytest.fixture
def admin_api() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """An admin API in this process, answering GET /deployments with the list the test fills in."""
    deployments: list[dict[str, Any]] = []

    def answer(_method: str, path: str, _body: bytes) -> tuple[int, Any]:
        return (200 if path == "/deployments" else 404), {"deployments": deployments}

    with json_server(answer) as port:
        yield port, deployments


def test_restate_is_who_listens_on_the_ingress_and_the_services_who_listen_where_deployed(
    services: tuple[int, int], admin_api: tuple[int, list[dict[str, Any]]]
) -> None:
    services_pid, services_port = services
    _, deployments = admin_api
    deployments += [
        {"uri": f"http://127.0.0.1:{free_port()}/", "services": [{"name": "trips", "revision": 1}]},  # gone
        {"uri": f"http://localhost:{services_port}/", "services": [{"name": "trips", "revision": 2}]},
    ]
    with listening() as ingress:
        served = discover(f"http://127.0.0.1:{ingress.getsockname()[1]}")
    assert served == Served(restate=frozenset({os.getpid()}), services=frozenset({services_pid}))


def test_what_cannot_be_found_is_said_in_a_few_words(
    services: tuple[int, int], admin_api: tuple[int, list[dict[str, Any]]]
) -> None:
    services_pid, services_port = services
    _, deployments = admin_api
    with pytest.raises(NotFound, match=r"^the ingress https://restate\.example\.com is not on this machine$"):
        discover("https://restate.example.com")
    nobody = free_port()
    with pytest.raises(NotFound, match=f"^no process bench may inspect listens on port {nobody}$"):
        discover(f"http://127.0.0.1:{nobody}")
    # A process with no other port that answers GET /deployments is no restate-server.
    with pytest.raises(
        NotFound, match=rf"^python\S* \(pid {services_pid}\) listens there, without a Restate admin API$"
    ):
        discover(f"http://127.0.0.1:{services_port}")
    with listening() as ingress:
        url = f"http://127.0.0.1:{ingress.getsockname()[1]}"
        deployments.append({"uri": "http://10.1.2.3:9080/", "services": [{"name": "trips", "revision": 1}]})
        with pytest.raises(NotFound, match=r"^its deployment http://10\.1\.2\.3:9080/ is not on this machine$"):
            discover(url)
        deployments[:] = [{"uri": f"http://127.0.0.1:{nobody}/", "services": [{"name": "trips", "revision": 1}]}]
        with pytest.raises(NotFound, match=f"listens on its deployment http://127.0.0.1:{nobody}/$"):
            discover(url)
