"""CPU seconds of processes and their descendants, through psutil: the same on Linux and macOS.

A process that cannot be read (another user's, without the right to) makes the figure unknown
(`CpuUnknown`), never zero: a report then says so in one line instead of printing a wrong figure.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil


class CpuUnknown(Exception):
    """Why the CPU of some process cannot be counted."""


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of these processes and all their live descendants; a process gone meanwhile counts 0."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied as denied:
            raise CpuUnknown(f"process {pid} cannot be read ({denied.msg or 'access denied'})") from None
        for process in family:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied as denied:
                raise CpuUnknown(f"process {process.pid} cannot be read ({denied.msg or 'access denied'})") from None
            total += times.user + times.system
    return total
