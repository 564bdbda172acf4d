"""Crash-safe file primitives: temp file, fsync, ``os.replace``, fsync the directory.

Every write that matters goes through here, so a SIGKILL at any moment leaves
either the old or the new content at a path, never a torn file, and a file
that may be hard-linked elsewhere is never written through (always a new inode).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from . import faults

CHUNK = 1 << 20
#: Every temp file of an atomic write ends so; a run killed between the write and the rename
#: leaves one behind, which resume and rollback sweep away (:func:`sweep_temp_files`).
TMP_SUFFIX = ".praxis-tmp"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or unlink inside it is durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def file_sha_or_none(path: Path) -> str | None:
    """sha256 of a regular file, ``None`` when absent; symlinks count as absent-ish (raise)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "symlink:" + os.readlink(path)
    if not stat.S_ISREG(st.st_mode):
        return "special:" + oct(st.st_mode)
    return sha256_file(path)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically and durably (new inode every time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        faults.point("fs:before-replace")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"
    atomic_write_bytes(path, data, mode=0o644)


def atomic_copy(src: Path, dst: Path, mode: int | None = None) -> None:
    """Copy ``src`` to ``dst`` through a temp file + rename (never writes through ``dst``)."""
    atomic_copy_verified(src, dst, None, stat.S_IMODE(os.stat(src).st_mode) if mode is None
                         else mode)


def atomic_copy_verified(src: Path, dst: Path, sha256: str | None, mode: int) -> None:
    """Stream ``src`` to ``dst`` (temp + fsync + rename), checking its sha256 on the way when
    given: constant memory whatever the file's size; a source that changed is never installed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name[:40]}.", suffix=TMP_SUFFIX)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            while True:
                block = inp.read(CHUNK)
                if not block:
                    break
                h.update(block)
                out.write(block)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        if sha256 is not None and h.hexdigest() != sha256:
            raise ChangedSource(str(src))
        faults.point("fs:before-replace")
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(dst.parent)


class ChangedSource(Exception):
    """A source file's content no longer matches the checksum the plan was made with."""


def durable_unlink(path: Path) -> bool:
    """Remove a file (no-op when absent); returns whether something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove now-empty directories from ``path.parent`` up to (not including) ``stop``."""
    cur = path.parent
    while cur != stop and stop in cur.parents:
        try:
            cur.rmdir()
        except OSError:
            return
        cur = cur.parent


def rmtree_durable(path: Path) -> None:
    """Remove a tree by renaming it aside first, so a crash never leaves half a tree in place."""
    if not path.exists() and not path.is_symlink():
        return
    trash = path.with_name(f".{path.name}.trash-{os.getpid()}")
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def sweep_temp_files(dirs: set[Path]) -> list[Path]:
    """Remove temp files that a killed atomic write left in these directories."""
    removed = []
    for d in sorted(dirs):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                try:
                    os.unlink(d / name)
                    removed.append(d / name)
                except FileNotFoundError:
                    pass
    return removed
