"""Fabric's convention: ``fab -H user@host1,user@host2 upgrade --source PATH --project /abs``.

Fabric runs the task once per host, serially, and stops at the first failing host (its own
rules). Each host runs the same engine as ``invoke upgrade --hosts ...`` (upgrade_tasks/fleet.py),
with host keys checked against known_hosts. For parallel rollouts with a canary and a failure
budget, use ``invoke upgrade --hosts ...``.
"""

from __future__ import annotations

from typing import Any

from fabric import task
from invoke.exceptions import Exit

from upgrade_tasks import fleet
from upgrade_tasks.errors import UpgradeError
from upgrade_tasks.options import CONFIG_DEFAULTS, FLAG_HELP, FLEET_HELP, Options

HELP = {**{k: v for k, v in FLAG_HELP.items()},
        **{k: FLEET_HELP[k] for k in ("accept_new_host_keys", "known_hosts", "sudo", "remote_dir")}}


def _opts(**kw: Any) -> Options:
    cfg = dict(CONFIG_DEFAULTS)
    cfg.update({k: v for k, v in kw.items() if v not in (None, "", False)})
    cfg["yes"] = True
    return Options.from_config(cfg)


def _on_host(c: Any, command: str, kw: dict[str, Any]) -> None:
    if not hasattr(c, "host"):
        raise Exit("error[usage]: name the hosts with fab -H user@host,... (or use invoke upgrade "
                   "for this machine)", 2)
    try:
        res = fleet.single_host(c, command, _opts(**kw))
    except UpgradeError as exc:
        raise Exit(exc.render(), exc.exit_code) from None
    print(f"[{res.host}] {command}: {res.result}"
          + (f" ({res.message})" if res.result != "ok" else ""), flush=True)
    if res.result != "ok":
        raise Exit(f"{res.host}: {res.message}", res.exit_code or 1)


@task(help=HELP)
def upgrade(c, source="", project="", on_conflict="", deps="", no_restart=False,  # type: ignore[no-untyped-def]
            allow_downgrade=False, find_links="", offline=False, post_install="",
            accept_new_host_keys=False, known_hosts="", sudo=False, remote_dir="", dry_run=False,
            yes=False, debug=False):
    """Upgrade the install at --project on each -H host (upgrade_tasks/fleet.py)."""
    _on_host(c, "upgrade", dict(locals_without_c(locals())))


@task(help={"project": FLAG_HELP["project"], "backup": "Backup id (default: the latest).",
            "known_hosts": FLEET_HELP["known_hosts"]})
def rollback(c, project="", backup="", known_hosts="", accept_new_host_keys=False):  # type: ignore[no-untyped-def]
    """Roll back the last upgrade on each -H host."""
    _on_host(c, "rollback", dict(locals_without_c(locals())))


@task(help={"project": FLAG_HELP["project"], "known_hosts": FLEET_HELP["known_hosts"]})
def status(c, project="", known_hosts="", accept_new_host_keys=False):  # type: ignore[no-untyped-def]
    """Status of the install on each -H host."""
    _on_host(c, "status", dict(locals_without_c(locals())))


def locals_without_c(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "c"}
