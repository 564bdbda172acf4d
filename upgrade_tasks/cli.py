"""The edge between Invoke and the upgrader: one run per command line, tasks made from the
option declarations, errors turned into exit codes.

Invoke calls pre-tasks without arguments, so the options cannot travel through the
task chain. :class:`PhaseExecutor` (named in ``invoke.yaml`` and in the collection's
config) therefore resolves them once, before any task runs, from the flags given to the
task(s) named on the command line and the config tree, and makes one
:class:`~upgrade_tasks.runstate.Run`. Every call, pre-tasks included, then gets a
:class:`RunContext` carrying that run, the way Fabric hands each task a ``Connection``
(a Context carrying a host). Calls carry no arguments of their own, so Invoke's
deduplication sees ``invoke backup upgrade`` as one ``backup``.

Every error, whatever raised it, leaves through :func:`upgrade_tasks.errors.exit_status`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.executor import Executor
from invoke.tasks import Call, Task

from . import fleet, jsondoc, options, streams
from .driver import close
from .errors import UsageError, exit_status
from .runstate import Run
from .ui import output_for

EXECUTOR = "upgrade_tasks.cli.PhaseExecutor"


class RunContext(Context):
    """An Invoke Context carrying the run of this command line."""

    #: (A class attribute, so Invoke's DataProxy keeps it an attribute rather than config;
    #: not ``run``, which is Context's method to run a command.)
    upgrade_run: Run | None = None

    def __init__(self, config: Config, run: Run) -> None:
        super().__init__(config=config)
        self.upgrade_run = run


class RunCall(Call):
    """A call whose context carries the run (and no arguments: the options are in the run)."""

    def __init__(self, task: Task[Any], run: Run, called_as: str | None = None) -> None:
        super().__init__(task, called_as=called_as)
        self.run = run

    def make_context(self, config: Config) -> Context:
        return RunContext(config, self.run)


class PhaseExecutor(Executor):
    """Resolve the options once, run the tasks with one :class:`Run`, map errors to exits."""

    run: Run | None = None

    def execute(self, *tasks: Any) -> dict[Task[Any], Any]:
        calls = self.normalize(tasks)
        given = _given(calls)
        debug = bool(given.get("debug"))
        command = " ".join(c.called_as or c.task.name for c in calls)
        failure: BaseException | None = None
        code = 0
        streams.tolerate_closed_output()
        try:
            self.config.load_collection(self.collection.configuration())
            self.config.load_shell_env()
            section = self.config.get("upgrade") or {}
            opts = options.resolve(given, section)
            self.run = Run.of(opts, out=output_for(opts))
            # --backup-to over SFTP: the fleet's connections (known_hosts, --identity, ...)
            self.run.connect = lambda dest: fleet.connect(dest.ssh_target, opts)
            result: dict[Task[Any], Any] = super().execute(*tasks)
            return result
        except Exit as exc:
            failure, code = exc, exc.code
            raise
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: B036 - every ending becomes an exit code here
            text, code = exit_status(exc, debug)
            failure = exc
            raise Exit(text, code) from None
        finally:
            if self.run is not None:
                close(self.run)
                self.run.ui.close()
            if given.get("json") or (self.run is not None and self.run.opts.json):
                print(jsondoc.dumps(jsondoc.document(command, self.run, failure, code)),
                      flush=True)

    def expand_calls(self, calls: list[Call]) -> list[Call]:
        assert self.run is not None
        return [c if isinstance(c, RunCall) else RunCall(c.task, self.run, c.called_as)
                for c in super().expand_calls(calls)]


def _given(calls: list[Call]) -> dict[str, Any]:
    """The flags given on the command line to the task(s) named there; one option given two
    different values (``invoke backup --deps skip upgrade --deps force``) is refused."""
    given: dict[str, Any] = {}
    for call in calls:
        for key, value in call.kwargs.items():
            if value is None or value is False:
                continue
            if key in given and given[key] != value:
                raise Exit(UsageError(
                    f"{options.flag(key)} is given twice with different values",
                    f"{given[key]!r} and {value!r}", "give it once").render(), 2)
            given[key] = value
    return given


def run_of(c: Context) -> Run:
    run = getattr(c, "upgrade_run", None)
    if not isinstance(run, Run):
        raise Exit(
            "error[setup]: this task needs the upgrader's executor\n"
            "  why:  Invoke ran it with another executor (invoke.yaml was not loaded)\n"
            f"  next: run it with `praxis-upgrade`, or with invoke from the upgrader's directory "
            f"(or -r PATH_TO_UPGRADER); tasks.executor_class must be {EXECUTOR}", 2)
    return run


def make_task(name: str, body: Callable[[Run], None], doc: str,
              pre: list[Task[Any]] | None = None, factory: Callable[..., Task[Any]] = Task,
              positional: list[str] | None = None) -> Task[Any]:
    """A task named ``name`` taking the flags declared for it in :mod:`upgrade_tasks.options`.

    Invoke reads a task's flags from ``inspect.signature`` of its body; the body's
    ``__signature__`` is derived from the declarations, so ``invoke --help TASK`` lists every
    flag with its help. The body itself only hands the run to ``body``.
    """

    def task_body(c: Context, **_flags: Any) -> None:
        body(run_of(c))

    task_body.__name__ = task_body.__qualname__ = name
    task_body.__module__ = body.__module__
    task_body.__doc__ = doc
    task_body.__signature__ = options.signature_for(name)  # type: ignore[attr-defined]
    return factory(task_body, name=name, pre=pre or [], help=options.help_for(name),
                   auto_shortflags=False, positional=positional or [])
