"""Child processes of the local tools: started in their own group, never outliving us."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def exit_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere: do nothing).

    Linux sends the signal when the *thread* that started the process ends, so
    start long-lived children from a thread that lives as long as they should.
    """
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def die_with_parent() -> None:
    """In the child: own process group (Ctrl-C is the parent's to handle), and die if the parent dies."""
    os.setsid()
    exit_with_parent()


@dataclass
class Process:
    """One child process, with its log."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path | None  # None: share our terminal
    popen: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT if self._log_file else None,
            preexec_fn=die_with_parent,
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not gone within `timeout`."""
        if self.popen is not None and self.alive:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: a crash, as the crash tests want it."""
        if self.popen is not None and self.alive:
            self.popen.kill()
            self.popen.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
