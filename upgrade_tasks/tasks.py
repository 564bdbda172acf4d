"""The Invoke tasks: one per phase, chained with ``pre=``, plus the commands around them.

Thin by design: each phase task runs exactly its phase through the driver
(:func:`upgrade_tasks.driver.run_phase`; the checkpoint decides whether it is already
done), and each task's flags come from the declarations in :mod:`upgrade_tasks.options`.
The first line of each docstring names the module that does the work, so
``invoke --list`` tells a reader where each phase lives. The top-level ``tasks.py``
of a checkout and the ``praxis-upgrade`` command both use :data:`ns`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.tasks import Task

from . import check as check_mod
from . import driver, fleet, options, projects, schedule_task
from . import status as status_mod
from .cli import EXECUTOR, make_task
from .demo import run_demo
from .errors import EXIT_UPGRADE_AVAILABLE, UpgradeAvailable, UpgradeError
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


def _many(command: str, run: Run) -> bool:
    """With --hosts (each host over SSH, upgrade_tasks/fleet.py) or --projects (each project in
    its own process, upgrade_tasks/projects.py): the command over all of them, by the same
    rollout rules. False when the command is for one install."""
    o = run.opts
    if not (o.hosts or o.projects):
        return False
    if o.hosts:
        fr = fleet.rollout(command, o)
    else:
        tty = sys.stdin is not None and sys.stdin.isatty()
        ask = command == "upgrade" and tty and not o.yes and not o.dry_run
        fr = projects.rollout(command, o, (lambda q: run.ui.ask(q).strip().lower() in ("y", "yes"))
                              if ask else None)
    run.result.update(outcome="fleet", fleet=fr.data)
    if fr.exit_code == EXIT_UPGRADE_AVAILABLE:
        raise UpgradeAvailable()
    if fr.exit_code:
        n = fr.noun
        raise RolloutFailed(fr.exit_code, n, f"{command}: {sum(r.result != 'ok' for r in fr.hosts)} "
                            f"of {len(fr.hosts)} {n}(s) not ok"
                            + (f"; stopped: {fr.stopped_by}" if fr.stopped_by else ""),
                            fr.failed_file)
    return True


class RolloutFailed(UpgradeError):
    """Some hosts or projects failed (exit 9), or the rollout stopped (exit 10); the table says
    which."""

    ref = "rollout-failed"

    def __init__(self, code: int, noun: str, what: str, failed_file: Path | None) -> None:
        super().__init__(what, "see the summary table above",
                         f"rerun the {noun}s not done with --{noun}s @{failed_file}" if failed_file
                         else f"rerun the same command when ready (the table says what each {noun} "
                         "reached)")
        self.exit_code = code


def _upgrade(run: Run) -> None:
    _many("upgrade", run)
    driver.finish(run)


def _rollback(run: Run) -> None:
    if _many("rollback", run):
        return
    text = manual_rollback(run.opts, run.connect)
    run.say(text)
    run.result.update(outcome="rolled-back", summary=text.splitlines(),
                      status=status_mod.inspect(run.opts).to_json())


def _status(run: Run) -> None:
    if _many("status", run):
        return
    st = status_mod.inspect(run.opts)
    run.result.update(st.to_json())
    run.say(st.text())


def _check(run: Run) -> None:
    if _many("check", run):
        return
    res = check_mod.check(run.opts)
    run.result.update(res.to_json())
    run.say(res.text())
    if res.upgrade_available:
        raise UpgradeAvailable()


def _discover(run: Run) -> None:
    found = projects.discover(run.opts)
    run.result.update(outcome="discovered", installs=[f.to_json() for f in found])
    run.say(projects.discover_text(found, run.opts.directory or "."))


def _schedule(run: Run) -> None:
    run.result.update(schedule_task.run(run.opts))
    for line in run.result.get("lines", []):
        run.say(line)


upgrade = make_task(
    "upgrade", _upgrade,
    "Upgrade an install: phases 0-5, resumable, rolled back on failure (upgrade_tasks/driver.py)."
    "\n\nWith --hosts the same upgrade runs on each host over SSH (upgrade_tasks/fleet.py), with "
    "--projects on each listed project (upgrade_tasks/projects.py): the rollout stops before its "
    "next batch once MORE than --max-fail percent of them have failed, and at once if a --canary "
    "fails.", pre=[cleanup])
rollback = make_task(
    "rollback", _rollback,
    "Undo the last upgrade (or back to --backup ID) and verify (upgrade_tasks/recovery.py).")
status = make_task(
    "status", _status,
    "Show the install's session, phases, lock and backups, with the command to go on "
    "(upgrade_tasks/status.py).")
check = make_task(
    "check", _check,
    "Is an upgrade available from --source? Exit 0 up to date, 11 available; reads only "
    "(upgrade_tasks/check.py).")
discover = make_task(
    "discover", _discover,
    "List every install below --directory with its installed commit (and, with --source, "
    "whether it is behind) (upgrade_tasks/projects.py).", positional=["directory"])
schedule = make_task(
    "schedule", _schedule,
    "Install (--every WHEN --job check|upgrade), --show or --remove a per-user schedule: "
    "crontab or a systemd user timer (upgrade_tasks/schedule.py).")
demo = make_task(
    "demo", lambda run: run.result.update(run_demo(keep=run.opts.keep, out=run.ui)),
    "Run an upgrade and a rollback on a generated sample (upgrade_tasks/demo.py).")

ns = Collection(*PHASES, upgrade, rollback, status, check, discover, schedule, demo)
ns.configure({"upgrade": options.config_defaults(),
              "tasks": {"executor_class": EXECUTOR, "dedupe": True},
              "run": {"in_stream": False}})
