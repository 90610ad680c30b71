"""CPU in proportion to memory, as Lambda allots it: one cgroup per worker, holding it to its share of a core.

Lambda gives a function CPU in proportion to its memory: at 1,769 MB it has the
equivalent of one vCPU, and up to 6 vCPUs at 10,240 MB
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). A laptop's
worker, left alone, takes a whole core whatever its memory, so a cold start or a
saga step looks faster here than on a 512 MB function. With `--limit-cpu`, each
worker runs in a cgroup of its own whose CPU bandwidth quota is MB/1769 of one
core (at most the machine's cores): each worker gets its own share, as each Lambda
execution environment does.

The runtime makes its cgroups in a directory of its own, `holiday-locallambda-<pid>`,
inside the cgroup it runs in (cgroup v2 where its `cpu` controller is enabled, else
the v1 `cpu` hierarchy), removes each one when its worker ends, and the directory
when it closes. A runtime killed outright cannot; the next one to start removes
the directories of runtimes that no longer run. Where none of this is possible
(not Linux, no `cpu` controller, no permission), `CpuLimits.start` says why and
the workers run unlimited.

A worker joins its cgroup itself, as its first act (`join`), before it imports
its handler: no part of the import runs outside its share.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FULL_CORE_MB = 1769  # memory at which a Lambda function has one full vCPU (see the page above)
PERIOD_US = 100_000  # the CFS bandwidth period: the quota is granted per 100 ms
MIN_QUOTA_US = 1_000  # the kernel refuses quotas under 1 ms
PREFIX = "holiday-locallambda-"
REMOVE_WAIT = 2.0  # seconds a cgroup may stay busy after its process has been reaped
PROC_CGROUP = Path("/proc/self/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")


def cores_for(memory_mb: int, cores: int | None = None) -> float:
    """The CPU a function of `memory_mb` gets, in cores: proportional to memory, capped at the machine's cores."""
    return min(memory_mb / FULL_CORE_MB, float(cores or os.cpu_count() or 1))


@dataclass(frozen=True)
class Controller:
    """Where the `cpu` controller can be used: our own cgroup in its hierarchy, and which version that is."""

    version: int  # 1 or 2
    own: Path  # the cgroup this process is in, as a directory of the mounted hierarchy


def find_controller() -> tuple[Controller | None, str]:
    """The `cpu` controller for our own cgroup, or None and why there is none."""
    if sys.platform != "linux":
        return None, f"cgroups are Linux only (this is {sys.platform})"
    try:
        memberships = PROC_CGROUP.read_text().splitlines()
        mounts = MOUNTINFO.read_text().splitlines()
    except OSError as err:
        return None, f"cannot read this process's cgroups: {err}"
    v1_path = v2_path = None
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    v1 = v2 = None
    for line in mounts:
        fields = line.split()
        dash = fields.index("-")
        root, point, fstype, options = fields[3], _unescape(fields[4]), fields[dash + 1], fields[dash + 3]
        if fstype == "cgroup2" and v2_path is not None:
            v2 = v2 or _inside(point, root, v2_path)
        elif fstype == "cgroup" and "cpu" in options.split(",") and v1_path is not None:
            v1 = v1 or _inside(point, root, v1_path)
    if v2 is not None and "cpu" in _read(v2 / "cgroup.controllers").split():
        return Controller(2, v2), ""
    if v1 is not None:
        return Controller(1, v1), ""
    if v2 is not None:
        return None, f"the cgroup v2 hierarchy at {v2} has no cpu controller, and no cgroup v1 cpu hierarchy is mounted"
    return None, "no cgroup cpu controller is mounted"


class CpuLimits:
    """This runtime's cgroups: one directory named with its pid, one cgroup per worker inside it.

    `limited` False: nothing is limited, and `note` says why. Thread-safe.
    """

    def __init__(self, controller: Controller | None, base: Path | None, note: str) -> None:
        self.controller = controller
        self.base = base
        self.note = note
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self.base is not None

    @classmethod
    def off(cls, note: str = "not asked for (--limit-cpu)") -> CpuLimits:
        return cls(None, None, note)

    @classmethod
    def start(cls) -> CpuLimits:
        """Make this runtime's directory (after removing those of runtimes that are gone), or say why not."""
        controller, why = find_controller()
        if controller is None:
            return cls.off(why)
        remove_leftovers(controller.own)
        base = controller.own / f"{PREFIX}{os.getpid()}"
        try:
            if controller.version == 2:
                _enable_cpu(controller.own)  # so that our directory has the cpu controller
            base.mkdir(exist_ok=True)
            if controller.version == 2:
                _enable_cpu(base)  # and the workers' cgroups inside it
        except OSError as err:
            with contextlib.suppress(OSError):
                base.rmdir()
            return cls.off(f"cannot make a cgroup with the cpu controller in {controller.own}: {err.strerror or err}")
        return cls(controller, base, f"cgroup v{controller.version} at {base}")

    def create(self, label: str, cores: float) -> str | None:
        """A new cgroup holding its processes to `cores` of CPU; its path, or None when nothing is limited."""
        if self.base is None or self.controller is None:
            return None
        with self._lock:
            path = self.base / f"{_safe(label)}-{next(self._names)}"
        path.mkdir()
        quota = max(MIN_QUOTA_US, round(cores * PERIOD_US))
        try:
            if self.controller.version == 2:
                (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError:
            self.remove(str(path))
            raise
        return str(path)

    def remove(self, path: str | None) -> None:
        """Remove a worker's cgroup once its process has ended (a moment's wait if the kernel lags)."""
        if path is None:
            return
        _rmdir(Path(path), time.monotonic() + REMOVE_WAIT)

    def close(self) -> None:
        """Remove every cgroup of this runtime, and its directory (their processes must have ended)."""
        if self.base is not None:
            _remove_tree(self.base, time.monotonic() + REMOVE_WAIT)
            self.base = None


def join(path: str) -> None:
    """Move this process into the cgroup at `path` (a worker's first act, before it imports anything of its own)."""
    Path(path, "cgroup.procs").write_text(str(os.getpid()))


def remove_leftovers(own: Path) -> None:
    """Remove the directories of runtimes that were killed before they could (their pid no longer runs)."""
    with contextlib.suppress(OSError):
        for entry in own.iterdir():
            match = re.fullmatch(re.escape(PREFIX) + r"(\d+)", entry.name)
            if match and entry.is_dir() and not _running(int(match.group(1))):
                _remove_tree(entry, time.monotonic())


def _remove_tree(base: Path, deadline: float) -> None:
    with contextlib.suppress(OSError):
        for child in base.iterdir():
            if child.is_dir():
                _rmdir(child, deadline)
    _rmdir(base, deadline)


def _rmdir(path: Path, deadline: float) -> None:
    """rmdir a cgroup; busy (a process still inside) is tried again until `deadline`, then left."""
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                return
        time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _enable_cpu(cgroup: Path) -> None:
    """cgroup v2: let the cgroups inside `cgroup` use the cpu controller."""
    if "cpu" not in _read(cgroup / "cgroup.subtree_control").split():
        (cgroup / "cgroup.subtree_control").write_text("+cpu")


def _inside(mount_point: str, mount_root: str, path: str) -> Path | None:
    """The directory of cgroup `path` in a hierarchy mounted at `mount_point` from `mount_root`, if it shows there."""
    if mount_root == "/":
        return Path(mount_point, path.lstrip("/"))
    if path == mount_root or path.startswith(mount_root + "/"):
        return Path(mount_point, path[len(mount_root) :].lstrip("/"))
    return None


def _unescape(field: str) -> str:
    """mountinfo escapes spaces and the like as octal (`\\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)
