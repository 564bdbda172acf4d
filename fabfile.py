"""Fabric's convention: ``fab -H user@host1,user@host2 upgrade --source PATH --project /abs``.

Fabric runs the task once per host, serially, and stops at the first failing host (its own
rules). Each host runs the same engine as ``invoke upgrade --hosts ...`` (upgrade_tasks/fleet.py),
with host keys checked against known_hosts. For parallel rollouts with a canary and a failure
budget, use ``invoke upgrade --hosts ...``. The flags of each task are the options that travel to
the host for that command (declared in upgrade_tasks/options.py) plus the SSH ones.
"""

from __future__ import annotations

from typing import Any

from fabric.tasks import Task
from invoke.exceptions import Exit

from upgrade_tasks import fleet, options
from upgrade_tasks.errors import EXIT_SOME_FAILED, exit_status

DOCS = {
    "upgrade": "Upgrade the install at --project on each -H host (upgrade_tasks/fleet.py).",
    "rollback": "Roll back the last upgrade on each -H host.",
    "status": "Status of the install on each -H host.",
}


def _on_host(c: Any, command: str, flags: dict[str, Any]) -> None:
    if not hasattr(c, "host"):
        raise Exit("error[usage]: name the hosts with fab -H user@host,... (or use invoke upgrade "
                   "for this machine)", 2)
    debug = bool(flags.get("debug"))
    try:
        res = fleet.single_host(c, command, options.resolve(flags, {}).replace(yes=True))
    except Exception as exc:  # noqa: BLE001 - every error becomes an exit code in one place
        text, code = exit_status(exc, debug)
        raise Exit(text, code) from None
    print(f"[{res.host}] {command}: {res.result}"
          + (f" ({res.message})" if res.result != "ok" else ""), flush=True)
    if res.result != "ok":
        raise Exit(f"{res.host}: {res.message}", res.exit_code or EXIT_SOME_FAILED)


def _task(command: str) -> Task:
    fields = options.fab_options(command)

    def body(c: Any, **flags: Any) -> None:
        _on_host(c, command, flags)

    body.__name__ = body.__qualname__ = command
    body.__doc__ = DOCS[command]
    body.__signature__ = options.signature_for(fields)  # type: ignore[attr-defined]
    return Task(body, name=command, help=options.help_for(fields))


upgrade = _task("upgrade")
rollback = _task("rollback")
status = _task("status")
