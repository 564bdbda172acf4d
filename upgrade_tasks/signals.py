"""Signals: Ctrl-C and SIGTERM become KeyboardInterrupt (so a phase rolls back), and are
deferred while a rollback runs (it must not be cut in half)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_handlers() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt. Set explicitly: a process started in the
    background (``nohup``, ``&`` in a non-interactive shell, some CI runners) inherits SIGINT
    as *ignored*, and Python then never installs its own handler, so Ctrl-C would be lost."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _sigterm)


@contextmanager
def deferred() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM inside the block."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
