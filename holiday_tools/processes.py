"""Child processes of the local tools: started in their own group, never outliving us."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
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


# Every child is started from this one thread, which lives as long as we do: Linux sends the
# parent-death signal when the *thread* that started a child ends, so a child started from a
# short-lived thread (a chaos injector restarting restate-server, say) would die with it.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")


@dataclass
class Process:
    """One child process; its output goes to its log file, and with `echo` to our terminal too."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    echo: bool = False
    popen: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("ab")
        self.popen = _SPAWNER.submit(
            subprocess.Popen,
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.echo else self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        ).result()
        if self.echo:
            self._pump = threading.Thread(target=self._copy_output, name=f"{self.name}-output", daemon=True)
            self._pump.start()

    def _copy_output(self) -> None:
        """Copy the child's output to its log and to our terminal, which may be gone (a closed window)."""
        assert self.popen is not None
        assert self._log_file is not None
        output = self.popen.stdout
        assert isinstance(output, io.BufferedReader)
        log, terminal = self._log_file, sys.stdout.buffer
        for chunk in iter(lambda: output.read1(65536), b""):
            log.write(chunk)
            log.flush()
            with contextlib.suppress(OSError, ValueError):
                terminal.write(chunk)
                terminal.flush()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit code once it has exited (negative: the signal that ended it); None while it runs."""
        return None if self.popen is None else self.popen.poll()

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def stop(self, timeout: float = 5.0) -> bool:
        """SIGTERM, then SIGKILL if it has not gone within `timeout`. True if it exited by itself."""
        by_itself = True
        if self.popen is not None and self.alive:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                by_itself = False
                self.popen.kill()
                self.popen.wait()
        self._close_log()
        return by_itself

    def kill(self) -> None:
        """SIGKILL: a crash, as the crash tests want it."""
        if self.popen is not None and self.alive:
            self.popen.kill()
            self.popen.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._pump is not None:
            self._pump.join(timeout=5)  # the pipe ends when the child (and whatever it started) is gone
            self._pump = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
