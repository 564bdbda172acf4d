"""The Invoke tasks: one per phase, chained with ``pre=``, plus the commands around them.

Thin by design: each phase task runs exactly its phase through the driver
(:func:`upgrade_tasks.driver.run_phase`; the checkpoint decides whether it is already
done), and each task's flags come from the declarations in :mod:`upgrade_tasks.options`.
The first line of each docstring names the module that does the work, so
``invoke --list`` tells a reader where each phase lives. The top-level ``tasks.py``
of a checkout and the ``praxis-upgrade`` command both use :data:`ns`.
"""

from __future__ import annotations

from typing import Any

from invoke.collection import Collection
from invoke.tasks import Task

from . import driver, fleet, options
from . import status as status_mod
from .cli import EXECUTOR, make_task
from .demo import run_demo
from .errors import UpgradeError
from .recovery import manual_rollback
from .runstate import Run

#: What each phase task says in ``invoke --list`` (phase number order).
PHASE_DOCS = (
    "Phase 0: pre-flight checks and the plan; changes nothing (upgrade_tasks/preflight.py).",
    "Phase 1: verified backup of every path the upgrade may touch (upgrade_tasks/backup.py).",
    "Phase 2: upgrade standards, workflows, scripts; keep your edits (upgrade_tasks/content.py).",
    "Phase 3: replace mcp_server/, deps, stop the old server (upgrade_tasks/server.py).",
    "Phase 4: start the new server over stdio and check its tools (upgrade_tasks/validate.py).",
    "Phase 5: reports, UPDATE_LOG, version record, prune backups (upgrade_tasks/cleanup.py).",
)


def _phase(n: int) -> Task[Any]:
    return make_task(options.PHASE_TASKS[n], lambda run: driver.run_phase(run, n), PHASE_DOCS[n],
                     pre=[PHASES[n - 1]] if n else None)


PHASES: list[Task[Any]] = []
for _n in range(len(options.PHASE_TASKS)):
    PHASES.append(_phase(_n))
preflight, backup, content, server, validate, cleanup = PHASES


def _fleet(command: str, run: Run) -> None:
    """With --hosts: the same command on each host over SSH (upgrade_tasks/fleet.py)."""
    fr = fleet.rollout(command, run.opts)
    run.result.update(outcome="fleet", fleet=fr.data)
    if fr.exit_code:
        raise FleetFailed(fr.exit_code, f"{command}: {sum(r.result != 'ok' for r in fr.hosts)} of "
                          f"{len(fr.hosts)} host(s) not ok"
                          + (f"; stopped: {fr.stopped_by}" if fr.stopped_by else ""))


class FleetFailed(UpgradeError):
    """Some hosts failed (exit 9), or the rollout stopped (exit 10); the table says which."""

    ref = "hosts-failed"

    def __init__(self, code: int, what: str) -> None:
        super().__init__(what, "see the summary table above",
                         "rerun the failed hosts with --hosts @.praxis-fleet/failed.txt")
        self.exit_code = code


def _upgrade(run: Run) -> None:
    if run.opts.hosts:
        _fleet("upgrade", run)
    driver.finish(run)


def _rollback(run: Run) -> None:
    if run.opts.hosts:
        _fleet("rollback", run)
    else:
        text = manual_rollback(run.opts)
        run.say(text)
        run.result.update(outcome="rolled-back", summary=text.splitlines(),
                          status=status_mod.inspect(run.opts).to_json())


def _status(run: Run) -> None:
    if run.opts.hosts:
        _fleet("status", run)
    else:
        st = status_mod.inspect(run.opts)
        run.result.update(st.to_json())
        run.say(st.text())


upgrade = make_task(
    "upgrade", _upgrade,
    "Upgrade an install: phases 0-5, resumable, rolled back on failure (upgrade_tasks/driver.py)."
    "\n\nWith --hosts the same upgrade runs on each host over SSH (upgrade_tasks/fleet.py): the "
    "rollout stops before its next batch once MORE than --max-fail percent of all hosts have "
    "failed, and at once if a --canary host fails.", pre=[cleanup])
rollback = make_task(
    "rollback", _rollback,
    "Undo the last upgrade (or back to --backup ID) and verify (upgrade_tasks/recovery.py).")
status = make_task(
    "status", _status,
    "Show the install's session, phases, lock and backups, with the command to go on "
    "(upgrade_tasks/status.py).")
demo = make_task(
    "demo", lambda run: run.result.update(run_demo(keep=run.opts.keep, out=run.ui)),
    "Run an upgrade and a rollback on a generated sample (upgrade_tasks/demo.py).")

ns = Collection(*PHASES, upgrade, rollback, status, demo)
ns.configure({"upgrade": options.config_defaults(),
              "tasks": {"executor_class": EXECUTOR, "dedupe": True},
              "run": {"in_stream": False}})
