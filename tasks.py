"""prAxIs OS upgrader: Invoke tasks (thin; the logic lives in ``upgrade_tasks``).

``invoke upgrade --source PATH --project DIR`` runs phases 0..5, each a task
chained to its predecessor with ``pre=``. Each task's first help line names
the module that implements it.
"""

from __future__ import annotations

from collections.abc import Callable

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from upgrade_tasks import demo as demo_mod
from upgrade_tasks import engine
from upgrade_tasks.cli import out, run_with_options
from upgrade_tasks.options import CONFIG_DEFAULTS, FLAG_HELP, FLEET_HELP, Options

HELP = dict(FLAG_HELP)
UPGRADE_HELP = {**FLAG_HELP, **FLEET_HELP}
ROLLBACK_HELP = {
    "backup": "Backup id to restore (default: the latest). Newer upgrades are undone first.",
    "project": FLAG_HELP["project"],
    "no_restart": "Do not stop the running MCP server.",
    "debug": FLAG_HELP["debug"],
    "yes": FLAG_HELP["yes"],
    **{k: v for k, v in FLEET_HELP.items() if k not in ("canary", "max_fail")},
}
STATUS_HELP = {"project": FLAG_HELP["project"], "debug": FLAG_HELP["debug"],
               **{k: v for k, v in FLEET_HELP.items() if k not in ("canary", "max_fail")}}


def _fleet(command: str) -> Callable[[Options], None]:
    def go(o: Options) -> None:
        from invoke.exceptions import Exit

        from upgrade_tasks import fleet

        fr = fleet.rollout(command, o)
        if fr.exit_code:
            raise Exit(f"{command}: {sum(r.result != 'ok' for r in fr.hosts)} of "
                       f"{len(fr.hosts)} host(s) not ok" + (f"; stopped: {fr.stopped_by}"
                                                           if fr.stopped_by else ""),
                       fr.exit_code)
    return go


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


@task(pre=[cleanup], help=UPGRADE_HELP, auto_shortflags=False)
def upgrade(
    c: Context, source: str = "", project: str = "", dry_run: bool = False, yes: bool = False,
    on_conflict: str = "", deps: str = "", no_restart: bool = False, debug: bool = False,
    allow_downgrade: bool = False, find_links: str = "", offline: bool = False,
    post_install: str = "", hosts: str = "", parallel: int = 0, canary: int = 0,
    max_fail: str = "", accept_new_host_keys: bool = False, identity: str = "",
    known_hosts: str = "", ssh_config: str = "", sudo: bool = False, remote_dir: str = "",
    report_dir: str = "",
) -> None:
    """Upgrade an install: phases 0-5, resumable, rolled back on failure (upgrade_tasks/engine.py).

    With --hosts the same upgrade runs on each host over SSH (upgrade_tasks/fleet.py): the
    rollout stops before its next batch once MORE than --max-fail percent of all hosts have
    failed, and at once if a --canary host fails.
    """
    run_with_options(c, lambda o: _fleet("upgrade")(o) if o.hosts else None)


@task(help=ROLLBACK_HELP, auto_shortflags=False)
def rollback(
    c: Context, backup: str = "", project: str = "", no_restart: bool = False, debug: bool = False,
    yes: bool = False, hosts: str = "", parallel: int = 0, accept_new_host_keys: bool = False,
    identity: str = "", known_hosts: str = "", ssh_config: str = "", sudo: bool = False,
    remote_dir: str = "", report_dir: str = "",
) -> None:
    """Undo the last upgrade (or back to --backup ID) and verify (upgrade_tasks/rollback.py)."""
    run_with_options(c, lambda o: _fleet("rollback")(o) if o.hosts
                     else out(engine.manual_rollback(o)))


@task(help=STATUS_HELP, auto_shortflags=False)
def status(
    c: Context, project: str = "", debug: bool = False, hosts: str = "", parallel: int = 0,
    accept_new_host_keys: bool = False, identity: str = "", known_hosts: str = "",
    ssh_config: str = "", sudo: bool = False, remote_dir: str = "", report_dir: str = "",
) -> None:
    """Show the install's session, phases, lock and backups, with the command to resume."""
    run_with_options(c, lambda o: _fleet("status")(o) if o.hosts else out(engine.status_text(o)))


@task(help={"keep": "Keep the demo directory and print its path.", "debug": FLAG_HELP["debug"]},
      auto_shortflags=False)
def demo(c: Context, keep: bool = False, debug: bool = False) -> None:
    """Run an upgrade and a rollback on a generated sample (upgrade_tasks/demo.py)."""
    run_with_options(c, lambda o: demo_mod.run_demo(keep=keep))


ns = Collection(preflight, backup, content, server, validate, cleanup, upgrade, rollback, status,
                demo)
ns.configure({"upgrade": dict(CONFIG_DEFAULTS)})
