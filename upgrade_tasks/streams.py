"""Output that may go away: a closed pipe never stops an upgrade.

An upgrade's lines go to a terminal, a pipe (``| head``, ``| tee``) or the rollout that started
the project's process. When the reader goes away (``head`` has its line, the rollout was
killed), a write raises ``BrokenPipeError``; raised inside a phase, that would fail the phase
half-way for a reason that has nothing to do with the install. So the standard streams are
wrapped: the first broken write points the stream's file descriptor at ``/dev/null`` (what
Python's documentation advises for SIGPIPE, so nothing fails at exit either) and the run goes
on to its consistent end, its reports and checkpoint on disk as always.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, TextIO


class Tolerant:
    """A text stream whose writes never fail because the reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def _gone(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                    raise
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                    raise
                self._gone()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def tolerate_closed_output() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, Tolerant):
            setattr(sys, name, Tolerant(stream))
