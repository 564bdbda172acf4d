"""The upgrade lock: ``filelock`` on ``.praxis-os/.upgrade-lock`` plus an owner record.

Correctness comes from the kernel lock (``flock``): it is held for the whole
run and released by the kernel when the process dies, so a dead holder never
blocks anyone. The owner record (pid, host, start time, session) is advisory,
for the message a second run prints. The lock file itself is never deleted
(deleting it would let two runs lock different inodes: tox-dev/filelock#574).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import now_iso
from .errors import LockHeldError, StateError
from .fsutil import atomic_write_json, lstat_or_none

try:  # filelock 4.x needs Python 3.11; on older hosts (the zipapp) fall back to flock directly
    from filelock import FileLock, Timeout
except Exception:  # pragma: no cover - exercised on Python < 3.11 hosts
    FileLock = None  # type: ignore[assignment,misc]

    class Timeout(Exception):  # type: ignore[no-redef]
        pass


class _FlockLock:
    """The same kernel lock as filelock's UnixFileLock: flock on a file that is never deleted."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise Timeout(self.path) from None
        self.fd = fd

    @property
    def is_locked(self) -> bool:
        return self.fd is not None

    def release(self, force: bool = False) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None



@dataclass
class UpgradeLock:
    """The upgrade lock and its owner record. acquire fails at once (no waiting) with LockHeldError
    naming the holder."""

    lock_file: Path
    owner_file: Path
    _lock: Any = None

    def acquire(self, session: str, command: str) -> None:
        check_lock_file(self.lock_file)
        lock: Any = (FileLock(str(self.lock_file), timeout=0, is_singleton=False)
                     if FileLock is not None
                     else _FlockLock(str(self.lock_file)))
        try:
            lock.acquire()
        except Timeout:
            raise LockHeldError(
                f"another upgrade holds the lock on {self.lock_file.parent}",
                describe_owner(self.owner_file),
                "wait for it to finish (see `invoke status`); a crashed run releases the lock "
                "by itself",
            ) from None
        self._lock = lock
        atomic_write_json(
            self.owner_file,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": now_iso(),
                "session": session,
                "command": command,
            },
        )

    def update_session(self, session: str) -> None:
        try:
            data = json.loads(self.owner_file.read_text())
        except (OSError, ValueError):
            data = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": now_iso()}
        data["session"] = session
        atomic_write_json(self.owner_file, data)

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def release(self) -> None:
        if self._lock is None:
            return
        try:  # the record is advisory; the kernel lock below is what matters
            self.owner_file.unlink()
        except OSError:
            pass
        self._lock.release(force=True)
        self._lock = None


def check_lock_file(lock_file: Path) -> None:
    """The lock file is ours: a regular file or nothing. A directory or a symlink there (a link
    would make every run lock someone else's file) is refused, never followed."""
    st = lstat_or_none(lock_file)
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else (
            "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        raise StateError(
            f"the upgrade lock {lock_file} is {kind}",
            "the lock must be a regular file the upgrader owns; it is never followed or replaced",
            f"if no upgrade is running, remove it (rm -r {lock_file}) and rerun",
        )


def _printable(value: Any, limit: int = 200) -> str:
    """A field of the owner record, safe to print (it is only read back, never trusted)."""
    text = str(value)[:limit]
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def read_owner(owner_file: Path) -> dict[str, Any] | None:
    """The owner record, or None when absent or unreadable (it is advisory)."""
    try:
        data = json.loads(owner_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_owner(owner_file: Path) -> str:
    """The owner record as one sentence for messages."""
    o = read_owner(owner_file)
    if not o:
        return "the lock is held, but its owner record is missing"
    f = {k: _printable(o.get(k, "?")) for k in ("pid", "host", "started_at", "command")}
    return (
        f"held by pid {f['pid']} on {f['host']} since {f['started_at']} "
        f"(session {_printable(o.get('session') or 'starting')}, command: {f['command']})"
    )


def probe_lock(lock_file: Path) -> bool:
    """Whether some process holds the lock. Read-only: never creates the lock file, never
    follows a link (a lock file that is not a regular file is nobody's lock)."""
    st = lstat_or_none(lock_file)
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    try:
        fd = os.open(lock_file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except (FileNotFoundError, OSError):
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
