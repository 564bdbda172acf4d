"""The edge between Invoke and the engine: option propagation and error translation.

:class:`OptionsExecutor` is named in ``invoke.yaml`` (``tasks.executor_class``).
Before any task runs it copies the flags given on the command line into
``config.upgrade``, so pre-tasks (which Invoke calls without arguments) see
the same options as the task the user named.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from invoke.exceptions import Exit
from invoke.executor import Executor

from .errors import EXIT_INTERRUPTED, UpgradeError
from .options import CONFIG_DEFAULTS, Options


class OptionsExecutor(Executor):
    """Invoke executor that hands the command line's flags to every task, pre-tasks included."""

    def execute(self, *tasks: Any) -> Any:
        # Load the collection's defaults and INVOKE_* variables now (Invoke does it per
        # call later) so that only flags given on the command line override them.
        self.config.load_collection(self.collection.configuration())
        self.config.load_shell_env()
        if self.config.get("upgrade") is None:
            self.config.upgrade = dict(CONFIG_DEFAULTS)
        section = self.config.upgrade
        for t in tasks:
            kwargs = getattr(t, "as_kwargs", None)
            if kwargs is None and isinstance(t, tuple):
                kwargs = t[1]
            for key, value in (kwargs or {}).items():
                if key in CONFIG_DEFAULTS and value not in (None, "", False):
                    setattr(section, key, value)
        section.propagated = True
        return super().execute(*tasks)


def options_from(c: Any) -> Options:
    section = c.config.get("upgrade")
    if section is None or not section.get("propagated"):
        raise Exit(
            "error[setup]: the task options were not propagated to pre-tasks\n"
            "  why:  invoke did not load invoke.yaml (it names upgrade_tasks.cli.OptionsExecutor)\n"
            "  next: run invoke from the upgrader's directory or with -r PATH_TO_UPGRADER",
            2,
        )
    return Options.from_config(section)


@contextmanager
def translated(debug: bool) -> Iterator[None]:
    """Turn our errors into ``invoke.Exit`` with a message and exit code."""
    try:
        yield
    except UpgradeError as exc:
        if debug:
            traceback.print_exc()
        raise Exit(exc.render(), exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", EXIT_INTERRUPTED) from None
    except Exit:
        raise
    except Exception as exc:
        if debug:
            traceback.print_exc()
        raise Exit(
            f"error[unexpected]: {type(exc).__name__}: {exc}\n"
            "  next: rerun with --debug for the traceback, and report it",
            1,
        ) from None


def run_with_options(c: Any, fn: Callable[[Options], Any]) -> Any:
    debug = False
    try:
        opts = options_from(c)
        debug = opts.debug
    except UpgradeError as exc:
        raise Exit(exc.render(), exc.exit_code) from None
    with translated(debug):
        return fn(opts)


def out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
