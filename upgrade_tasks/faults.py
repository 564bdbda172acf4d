"""Test-only fault injection, chosen by environment variables.

* ``PRAXIS_UPGRADE_FAULT=<point>[,<point>...]`` raises :class:`InjectedFault`
  when a named point is reached, or, for ``<point>:EIO`` (any errno name: ``ENOSPC``,
  ``EACCES``, ``EROFS``...), the ``OSError`` the disk would raise there;
* ``PRAXIS_UPGRADE_KILL=<point>`` SIGKILLs the process there (a crash, no cleanup);
* ``PRAXIS_UPGRADE_TRACE=<file>`` appends every point reached (``name#N``) to a file: the
  crash harness enumerates the durable steps of an upgrade with it;
* ``PRAXIS_UPGRADE_PAUSE=<point>`` creates the file named by
  ``PRAXIS_UPGRADE_PAUSE_FLAG`` and sleeps up to 30 s until that file is removed
  (lets a test act while the run is held at a known point).

``<point>`` may end with ``#N`` to hit only the N-th time the point is reached
(1-based). Unset in normal use: then :func:`point` is a no-op.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections import Counter

_hits: Counter[str] = Counter()
_lock = threading.Lock()
_ENV = ("PRAXIS_UPGRADE_FAULT", "PRAXIS_UPGRADE_KILL", "PRAXIS_UPGRADE_PAUSE",
        "PRAXIS_UPGRADE_TRACE")


class InjectedFault(RuntimeError):
    """A failure injected by a test through ``PRAXIS_UPGRADE_FAULT``."""


def _matching(specs: str, name: str, n: int) -> str | None:
    """The spec that matches point ``name`` at its ``n``-th hit (``None``: none does)."""
    for spec in specs.split(","):
        spec = spec.strip()
        where = _without_errno(spec)[0]
        if "#" in where:
            point_name, _, nth = where.rpartition("#")
            if point_name == name and n == int(nth):
                return spec
        elif where == name:
            return spec
    return None


def _without_errno(spec: str) -> tuple[str, int | None]:
    """``content:file#3:EIO`` -> (``content:file#3``, errno.EIO); point names hold colons too."""
    head, _, tail = spec.rpartition(":")
    code = getattr(errno, tail, None) if head and tail.isupper() and tail.startswith("E") else None
    return (head, code) if isinstance(code, int) else (spec, None)


def _matches(specs: str, name: str, n: int) -> bool:
    return _matching(specs, name, n) is not None


def point(name: str) -> None:
    """Mark a durable step; tests may crash, fail or pause the run here."""
    if not any(k in os.environ for k in _ENV):
        return
    with _lock:  # copy loops call this from several threads
        _hits[name] += 1
        n = _hits[name]
        trace = os.environ.get("PRAXIS_UPGRADE_TRACE")
        if trace:
            with open(trace, "a") as fh:
                fh.write(f"{name}#{n}\n")
    kill = os.environ.get("PRAXIS_UPGRADE_KILL", "")
    if kill and _matches(kill, name, n):
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("PRAXIS_UPGRADE_PAUSE", "")
    if pause and _matches(pause, name, n):
        flag = os.environ["PRAXIS_UPGRADE_PAUSE_FLAG"]
        with open(flag, "w") as fh:
            fh.write(str(os.getpid()))
        deadline = time.monotonic() + 30
        while os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.02)
    fault = os.environ.get("PRAXIS_UPGRADE_FAULT", "")
    spec = _matching(fault, name, n) if fault else None
    if spec is not None:
        code = _without_errno(spec)[1]
        if code is not None:
            raise OSError(code, os.strerror(code), f"(injected at {name})")
        raise InjectedFault(f"fault injected at {name}")
