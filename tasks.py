"""prAxIs OS upgrader: Invoke tasks (thin; the logic lives in ``upgrade_tasks``).

``invoke upgrade --source PATH --project DIR`` runs phases 0..5, each a task
chained to its predecessor with ``pre=``. Each task's first help line names
the module that implements it.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from upgrade_tasks import demo as demo_mod
from upgrade_tasks import engine
from upgrade_tasks.cli import out, run_with_options
from upgrade_tasks.options import CONFIG_DEFAULTS, FLAG_HELP

HELP = dict(FLAG_HELP)
ROLLBACK_HELP = {
    "backup": "Backup id to restore (default: the latest). Newer upgrades are undone first.",
    "project": FLAG_HELP["project"],
    "no_restart": "Do not stop the running MCP server.",
    "debug": FLAG_HELP["debug"],
    "yes": FLAG_HELP["yes"],
}


def _phase(c: Context, n: int) -> None:
    run_with_options(c, lambda o: engine.run_phase(o, n))


@task(help=HELP, auto_shortflags=False)
def preflight(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Phase 0: pre-flight checks and the plan; changes nothing (upgrade_tasks/preflight.py)."""
    _phase(c, 0)


@task(pre=[preflight], help=HELP, auto_shortflags=False)
def backup(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Phase 1: verified backup of every path the upgrade may touch (upgrade_tasks/backup.py)."""
    _phase(c, 1)


@task(pre=[backup], help=HELP, auto_shortflags=False)
def content(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Phase 2: upgrade standards, workflows, scripts; keep your edits (upgrade_tasks/content.py)."""
    _phase(c, 2)


@task(pre=[content], help=HELP, auto_shortflags=False)
def server(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Phase 3: replace mcp_server/, deps, stop the old server (upgrade_tasks/server.py)."""
    _phase(c, 3)


@task(pre=[server], help=HELP, auto_shortflags=False)
def validate(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Phase 4: start the new server over stdio and check its tools (upgrade_tasks/validate.py)."""
    _phase(c, 4)


@task(pre=[validate], help=HELP, auto_shortflags=False)
def cleanup(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Phase 5: reports, UPDATE_LOG, version record, prune backups (upgrade_tasks/engine.py)."""
    _phase(c, 5)


@task(pre=[cleanup], help=HELP, auto_shortflags=False)
def upgrade(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "",
) -> None:
    """Upgrade an install: phases 0-5, resumable, rolled back on failure (upgrade_tasks/engine.py)."""


@task(help=ROLLBACK_HELP, auto_shortflags=False)
def rollback(
    c: Context, backup: str = "", project: str = "", no_restart: bool = False, debug: bool = False,
    yes: bool = False,
) -> None:
    """Undo the last upgrade (or back to --backup ID) and verify (upgrade_tasks/rollback.py)."""
    out(run_with_options(c, engine.manual_rollback))


@task(help={"project": FLAG_HELP["project"], "debug": FLAG_HELP["debug"]}, auto_shortflags=False)
def status(c: Context, project: str = "", debug: bool = False) -> None:
    """Show the install's session, phases, lock and backups, with the command to resume."""
    out(run_with_options(c, engine.status_text))


@task(help={"keep": "Keep the demo directory and print its path.", "debug": FLAG_HELP["debug"]},
      auto_shortflags=False)
def demo(c: Context, keep: bool = False, debug: bool = False) -> None:
    """Run an upgrade and a rollback on a generated sample (upgrade_tasks/demo.py)."""
    run_with_options(c, lambda o: demo_mod.run_demo(keep=keep))


ns = Collection(preflight, backup, content, server, validate, cleanup, upgrade, rollback, status,
                demo)
ns.configure({"upgrade": dict(CONFIG_DEFAULTS)})
