"""Who holds a local lock, and whether that process is certainly gone.

A local lock file records its holder's process: host name, PID, the process's start
time (``/proc/<pid>/stat`` field 22, clock ticks since boot), the boot id
(``/proc/sys/kernel/random/boot_id``) and the PID namespace (``/proc/self/ns/pid``).
:func:`holder_gone` decides from those facts alone (pure); :func:`this_process` and
:func:`start_time` read them on this machine (the I/O edge).

A holder is gone only when the lock was written **on this host, in this PID namespace**
and either the machine rebooted since (another boot id) or no process with that PID and
start time runs now (the PID is free, or reused by a process started at another time).
Anything unknown — another host, another container's PID namespace, a record without a
PID, a system without ``/proc`` where a live PID cannot be told from a reused one —
counts as alive: the lock then waits for its expiry as before.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EXITED", "ProcessIdentity", "holder_gone", "start_time", "this_process"]

_PROC = Path("/proc")

EXITED = -1
"""What :func:`start_time` says of a process that has exited but is not reaped yet (a
zombie): it holds no lock any more, and -1 never equals a recorded start time."""


@dataclass(frozen=True)
class ProcessIdentity:
    """The facts a lock record keeps about the process that wrote it."""

    host: str
    pid: int
    start: int | None
    boot: str | None
    pid_ns: str | None

    def record(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "pid_start": self.start,
            "boot_id": self.boot,
            "pid_ns": self.pid_ns,
        }


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot, :data:`EXITED` for a
    zombie, or None when ``/proc`` cannot tell (no such process, or not visible)."""
    text = _read_text(_PROC / str(pid) / "stat")
    if text is None:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; field 22 is the
    # 20th after the last ")".
    fields = text.rpartition(")")[2].split()
    if fields[:1] in (["Z"], ["X"]):
        return EXITED
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(_PROC / "self" / "ns" / "pid")
    return None


def this_process() -> ProcessIdentity:
    """The identity of the running process (what a lock it takes records)."""
    pid = os.getpid()
    return ProcessIdentity(
        host=socket.gethostname(),
        pid=pid,
        start=start_time(pid),
        boot=_read_text(_PROC / "sys" / "kernel" / "random" / "boot_id"),
        pid_ns=_pid_namespace(),
    )


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def holder_gone(
    held: Mapping[str, Any],
    here: ProcessIdentity,
    start_of: Callable[[int], int | None] = start_time,
    exists: Callable[[int], bool] = _pid_exists,
) -> bool:
    """True only when the process that wrote the lock record ``held`` certainly no longer
    runs (see the module docstring); ``start_of``/``exists`` probe a PID on this host."""
    pid = held.get("pid")
    if held.get("host") != here.host or not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if pid <= 0 or held.get("pid_ns") != here.pid_ns:
        return False
    boot = held.get("boot_id")
    if boot is not None and here.boot is not None and boot != here.boot:
        return True  # rebooted since: every process of that boot is gone
    if not exists(pid):
        return True
    recorded = held.get("pid_start")
    if not isinstance(recorded, int) or here.start is None:
        return False  # cannot tell a live holder from a reused PID: wait for expiry
    current = start_of(pid)
    return current is not None and current != recorded
