"""How a run talks to its user: lines, the plan, phase progress, long steps, questions.

The driver and the phases speak to an :class:`Output` and never format for a terminal
themselves. This base class writes plain lines, one per event, through a line printer: what a
pipe, a log, CI, ``NO_COLOR`` terminals of the past and the host engine (which must run with
nothing but ``python3``, so it never imports ``rich``) all read well. The terminal's richer
view (:class:`upgrade_tasks.ui.RichOutput`: the plan as a table, a live line per phase,
progress bars) and the ``--json`` mode (lines to stderr) are chosen at the edge
(:func:`upgrade_tasks.ui.output_for`) and passed in; nothing here knows about them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from .planview import PlanView


class Progress:
    """A long step in progress: ``advance`` counts done units (when the total is known),
    ``note`` shows the step's latest output line. Plain output shows a note at most every
    ``every`` seconds (a pip or model download would otherwise flood a log)."""

    def __init__(self, write: Callable[[str], None], every: float = 10.0) -> None:
        self._write = write
        self._every = every
        self._last = 0.0
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n

    def note(self, text: str) -> None:
        now = time.monotonic()
        if text and (now - self._last >= self._every or "complete" in text.lower()):
            self._last = now
            self._write(f"    | {text[-120:]}")


class Output:
    """Plain lines through ``write`` (the base: pipes, logs, hosts)."""

    #: whether questions can be asked (a terminal, and no --yes); set by the edge
    interactive = False

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def line(self, text: str) -> None:
        self.write(text)

    def plan(self, view: PlanView) -> None:
        self.write(view.plain())

    def phase_started(self, label: str) -> None:
        self.write(f"{label} ...")

    def phase_ended(self, label: str, seconds: float, summary: str, ok: bool = True) -> None:
        self.write(f"{label} {'ok' if ok else 'FAILED'} ({seconds:.2f}s): {summary}")

    @contextlib.contextmanager
    def progress(self, what: str, total: int | None = None) -> Iterator[Progress]:
        """A long step: announced, its output noted now and then, its time told at the end."""
        self.write(f"    {what} ...")
        t0 = time.monotonic()
        yield Progress(self.write)
        self.write(f"    {what}: done in {time.monotonic() - t0:.1f}s")

    def ask(self, question: str) -> str:
        """One answer from the user (only called when :attr:`interactive`)."""
        return input(question)

    def close(self) -> None:
        """The run is over: stop anything live."""
