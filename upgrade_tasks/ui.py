"""The terminal's view of a run, with ``rich``: the plan as tables with a legend and colours, a
live line per phase, progress for long steps; and the choice of view for a command.

:func:`output_for` picks, once per command (at the edge, like the options):

* ``--json``: plain lines on stderr (stdout carries the one JSON document);
* a terminal: :class:`RichOutput` (``NO_COLOR`` set: the same, without colour, as rich does);
* anything else (a pipe, a file, CI): the plain lines of :class:`upgrade_tasks.output.Output`.

The host engine never gets here: it runs with nothing but ``python3`` and prints plain
lines, which the controller shows in its own table.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBar
from rich.status import Status
from rich.table import Table
from rich.text import Text

from .options import Options
from .output import Output, Progress
from .planview import COUNT_TITLES, KINDS, PlanView
from .runstate import say
from .wording import for_user

#: Line prefixes and their colour (warnings, errors, what needs the user).
_STYLES = (("  needs your attention", "bold yellow"), ("  warning", "yellow"),
           ("warning", "yellow"), ("error", "bold red"), ("upgrade complete", "bold green"),
           ("rollback complete", "bold green"), ("  note:", "dim"))


class _BarProgress(Progress):
    def __init__(self, bar: RichBar, task: Any) -> None:
        super().__init__(lambda _t: None)
        self._bar, self._task = bar, task

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        self._bar.update(self._task, advance=n)

    def note(self, text: str) -> None:
        self._bar.update(self._task, last=text.strip()[-70:])


class RichOutput(Output):
    """A terminal: tables, colour, a spinner per phase, progress bars."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        super().__init__(self._print)
        self._status: Status | None = None
        self._label = ""

    def _print(self, text: str) -> None:
        text = for_user(text)
        style = next((s for prefix, s in _STYLES if text.startswith(prefix)), None)
        self.console.print(Text(text, style=style or ""))

    # -- phases ---------------------------------------------------------------------------------
    def phase_started(self, label: str) -> None:
        self._stop()
        self._label = label
        self._status = self.console.status(Text(label, style="bold"), spinner="dots")
        self._status.start()

    def phase_ended(self, label: str, seconds: float, summary: str, ok: bool = True) -> None:
        self._stop()
        mark = Text("✓ ", style="bold green") if ok else Text("✗ ", style="bold red")
        line = mark + Text(label, style="bold") + Text(f"  {seconds:.2f}s  ", style="dim")
        line += Text(for_user(summary), style="" if ok else "red")
        self.console.print(line)

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @contextlib.contextmanager
    def _paused(self) -> Iterator[None]:
        """Live displays stop while something else takes the screen (a prompt, a bar)."""
        label, was = self._label, self._status is not None
        self._stop()
        try:
            yield
        finally:
            if was:
                self.phase_started(label)

    @contextlib.contextmanager
    def progress(self, what: str, total: int | None = None) -> Iterator[Progress]:
        cols: list[Any] = [SpinnerColumn(), TextColumn("    {task.description}")]
        if total:
            cols += [BarColumn(), MofNCompleteColumn()]
        cols += [TimeElapsedColumn(), TextColumn("[dim]{task.fields[last]}")]
        with self._paused():
            with RichBar(*cols, console=self.console, transient=True) as bar:
                task = bar.add_task(what, total=total, last="")
                yield _BarProgress(bar, task)
            self.console.print(Text(f"    {what}: done", style="dim"))

    # -- the plan ---------------------------------------------------------------------------
    def plan(self, view: PlanView) -> None:
        with self._paused():
            self.console.print(plan_renderables(view))

    def ask(self, question: str) -> str:
        with self._paused():
            return self.console.input(Text(question, style="bold"))

    def close(self) -> None:
        self._stop()


def plan_renderables(view: PlanView) -> Table:
    """The plan as one grid: the header, counts per place, one row per file with its mark,
    the legend, the server and the notes."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    grid.add_row(Text(f"{view.header}: ", style="bold") + Text(view.install))
    inst = (f"installed {view.installed_commit[:10]} ({view.base})" if view.installed_commit
            else "installed commit unknown")
    ref = f" (--ref {view.source_ref})" if view.source_ref else ""
    grid.add_row(Text(f"  source commit {view.source_commit[:10]}{ref}, {inst}", style="dim"))
    if view.migrate_from:
        grid.add_row(Text(f"  the install moves: {view.migrate_from}/ -> .praxis-os/",
                          style="yellow"))
    cols = view.count_columns
    counts = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    counts.add_column("where")
    for k in cols:
        counts.add_column(COUNT_TITLES[k], justify="right", style=KINDS[k].style)
    for place, c in view.places:
        counts.add_row(place, *[str(c.get(k, "")) for k in cols])
    grid.add_row(counts)
    if view.rows:
        files = Table(box=None, padding=(0, 1), show_header=False, show_edge=False)
        files.add_column(width=1)
        # a path is never cut short: its column is as wide as the longest (details wrap)
        files.add_column(no_wrap=True, min_width=max(len(r.path) for r in view.rows))
        files.add_column(style="dim", ratio=1)
        for r in view.rows:
            kind = KINDS.get(r.kind)
            style = kind.style if kind else "bold magenta"
            files.add_row(Text(r.mark, style=style), Text(r.path, style=style),
                          "" if kind and r.kind in ("add", "update", "remove") else r.detail)
        grid.add_row(files)
        legend = Text("  ")
        for mark, word, style in view.legend:
            legend += Text(mark, style=style) + Text(f" {word}   ", style="dim")
        grid.add_row(legend)
    facts = Table(box=None, padding=(0, 1), show_header=False, show_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    for what, text in view.facts:
        facts.add_row(what, text)
    grid.add_row(facts)
    for n in view.notes:
        grid.add_row(Text(f"  note: {n}", style="dim"))
    for a in view.attention:
        grid.add_row(Text(f"  attention: {a}", style="yellow"))
    return grid


class _StderrOutput(Output):
    """--json: the lines on stderr (a prompt too), stdout left to the document."""

    def __init__(self) -> None:
        super().__init__(lambda t: print(for_user(t), file=sys.stderr, flush=True))

    def ask(self, question: str) -> str:
        print(question, end="", file=sys.stderr, flush=True)
        return sys.stdin.readline()


def output_for(opts: Options) -> Output:
    """The view for this command (see the module's docstring)."""
    if opts.json:
        return _StderrOutput()
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        return RichOutput()
    return Output(say)
