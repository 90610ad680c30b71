"""The local tools' child processes: they outlive the thread that started them, but never us."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from holiday_tools.processes import Process


def test_a_child_started_from_a_thread_that_ends_keeps_running(tmp_path: Path) -> None:
    # As chaos restarts restate-server from its injector thread, which ends before the stack does.
    child = Process("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "sleeper.log")
    starter = threading.Thread(target=child.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.5)  # the parent-death signal, if it were tied to that thread, has fired by now
        assert child.alive
    finally:
        assert child.stop(timeout=5)  # and it stops when asked, by itself
    assert not child.alive
