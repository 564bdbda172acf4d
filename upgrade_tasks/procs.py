"""Other processes, read only: their command line, working directory and environment.

Through ``psutil`` (Linux, macOS, Windows: one well-kept library instead of hand-read
``/proc``), which the installed package depends on. The host engine is a zipapp run by a
bare ``python3``, where psutil (a compiled extension) cannot travel; there, on Linux, the
same three facts are read from ``/proc``. Without either, nothing can be inspected:
:func:`available` says so, and the caller leaves running servers alone and reports it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

try:
    import psutil
except ImportError:  # the host engine (zipapp) on a bare python3
    psutil = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Proc:
    """What a process shows of itself. ``cwd``/``environ``: ``None`` when not readable (another
    user's process)."""

    pid: int
    cmdline: tuple[str, ...]
    cwd: str | None
    environ: dict[str, str] | None


def backend() -> str:
    if psutil is not None:
        return "psutil"
    if os.path.isdir("/proc/self"):
        return "/proc"
    return ""


def available() -> bool:
    return bool(backend())


def pids() -> Iterator[int]:
    """Every process id on the machine (this one left out)."""
    me = os.getpid()
    if psutil is not None:
        found = psutil.pids()
    elif os.path.isdir("/proc"):
        found = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    else:
        found = []
    return (p for p in found if p != me)


def names() -> set[str]:
    """The names (``comm``) of every process this user can see: "is a cron daemon running?"."""
    if psutil is not None:
        out = set()
        for proc in psutil.process_iter(["name"]):
            if proc.info.get("name"):
                out.add(proc.info["name"])
        return out
    found = set()
    for pid in pids():
        comm = _read(f"/proc/{pid}/comm")
        if comm:
            found.add(comm.decode(errors="replace").strip())
    return found


def inspect(pid: int) -> Proc | None:
    """The process ``pid`` (``None`` when it is gone, or its command line cannot be read)."""
    if psutil is not None:
        return _psutil(pid)
    return _proc(pid)


def _psutil(pid: int) -> Proc | None:
    assert psutil is not None
    try:
        p = psutil.Process(pid)
        cmd = tuple(p.cmdline())
    except (psutil.Error, OSError):
        return None
    if not cmd:
        return None
    cwd: str | None
    env: dict[str, str] | None
    try:
        cwd = p.cwd()
    except (psutil.Error, OSError):
        cwd = None
    try:
        env = dict(p.environ())
    except (psutil.Error, OSError):
        env = None
    return Proc(pid, cmd, cwd, env)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _proc(pid: int) -> Proc | None:
    raw = _read(f"/proc/{pid}/cmdline")
    if not raw:
        return None
    cmd = tuple(p.decode(errors="replace") for p in raw.rstrip(b"\0").split(b"\0"))
    try:
        cwd: str | None = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = None
    env_raw = _read(f"/proc/{pid}/environ")
    env = None
    if env_raw is not None:
        env = {}
        for item in env_raw.split(b"\0"):
            key, sep, value = item.partition(b"=")
            if sep:
                env[key.decode(errors="replace")] = value.decode(errors="replace")
    return Proc(pid, cmd, cwd, env)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it has exited and waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return False
    if psutil is not None:
        try:
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False
    stat = _read(f"/proc/{pid}/stat")
    return not (stat and b") Z" in stat)
