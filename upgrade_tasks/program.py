"""The ``praxis-upgrade`` command: Invoke's ``Program`` over the task collection (as Fabric's
``fab`` is built), so an installed package needs no checkout and no ``tasks.py``.

``praxis-upgrade upgrade --source ... --project ...`` runs the same tasks, with the same flags
and help, as ``invoke -r CHECKOUT upgrade ...``. The difference is at the edge: a command line
Invoke cannot parse (a mistyped flag, a missing value) exits 2 with the closest valid spelling,
where Invoke itself exits 1 with no suggestion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import re
from collections.abc import Iterator
from typing import Any

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from . import __version__, options
from .cli import PhaseExecutor
from .errors import EXIT_USAGE
from .tasks import ns


class UpgradeProgram(Program):
    def print_task_help(self, name: str) -> None:
        """Invoke's task help, with each flag's metavar from its declaration
        (``--on-conflict=merge|keep|theirs|abort|ask``, ``--project=DIR``) instead of
        ``=STRING``."""
        ctx = self.parser.contexts[name]
        plain = ctx.help_tuples
        ctx.help_tuples = lambda: [(with_metavar(spec), text) for spec, text in plain()]
        try:
            super().print_task_help(name)
        finally:
            del ctx.help_tuples

    def parse_core(self, argv: Any) -> None:
        with _usage_errors(self):
            super().parse_core(argv)

    def parse_tasks(self) -> None:
        with _usage_errors(self):
            super().parse_tasks()


def with_metavar(flagspec: str) -> str:
    """``--on-conflict=STRING`` -> ``--on-conflict=merge|keep|theirs|abort|ask``."""
    flag, eq, _kind = flagspec.partition("=")
    if not eq:
        return flagspec
    fields = {f.name: f for f in dataclasses.fields(options.Options)}
    f = fields.get(flag.lstrip("-").replace("-", "_"))
    return f"{flag}={options.metavar(f)}" if f is not None else flagspec


@contextlib.contextmanager
def _usage_errors(program: Program) -> Iterator[None]:
    """Turn Invoke's ParseError into exit 2 with a suggestion."""
    try:
        yield
    except ParseError as exc:
        raise Exit(explain(exc, program), EXIT_USAGE) from None


def explain(exc: ParseError, program: Program) -> str:
    """Invoke's parse error, with the closest task name or flag when one was mistyped."""
    text = str(exc)
    m = re.search(r"'([^']+)'", text)
    words: list[str] = list(ns.task_names)
    ctx = getattr(exc, "context", None)
    if ctx is not None and getattr(ctx, "flags", None):
        words += list(ctx.flags)
    else:
        for task in ns.tasks.values():
            words += ["--" + a.name.replace("_", "-") for a in task.get_arguments()]
    hint = ""
    if m:
        close = difflib.get_close_matches(m.group(1), sorted(set(words)), n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {close[0]}? "
    name = program.binary or "praxis-upgrade"
    return (f"error[usage]: {text}\n  next: {hint}see `{name} --help TASK` for the flags of a "
            "task, `" + name + " --list` for the tasks")


program = UpgradeProgram(name="praxis-upgrade", binary="praxis-upgrade", version=__version__,
                         namespace=ns, executor_class=PhaseExecutor)


def main() -> None:
    """The console script's entry point."""
    program.run()
