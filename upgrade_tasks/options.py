"""Run options: one typed value built from Invoke's config tree.

Every phase task takes the same flags. Invoke does not hand a task's arguments
to its pre-tasks, so :class:`upgrade_tasks.cli.OptionsExecutor` copies the flags
given on the command line into ``config.upgrade`` before anything runs; every
task then reads its options from there. Defaults come from
:data:`CONFIG_DEFAULTS`, ``invoke.yaml`` and ``INVOKE_UPGRADE_*`` variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

ON_CONFLICT = ("merge", "keep", "theirs", "abort", "ask")
DEPS = ("auto", "skip", "force")

#: The ``upgrade`` section of the config tree, with every key present so that
#: ``INVOKE_UPGRADE_<KEY>`` environment variables can override it.
CONFIG_DEFAULTS: dict[str, Any] = {
    "source": "",
    "project": "",
    "dry_run": False,
    "yes": False,
    "on_conflict": "merge",
    "allow_downgrade": False,
    "find_links": "",
    "offline": False,
    "post_install": "auto",
    # fleet (remote hosts over SSH)
    "hosts": "",
    "parallel": 1,
    "canary": 0,
    "max_fail": 0.0,
    "accept_new_host_keys": False,
    "identity": "",
    "known_hosts": "",
    "ssh_config": "",
    "sudo": False,
    "remote_dir": "",
    "report_dir": ".praxis-fleet",
    "deps": "auto",
    "no_restart": False,
    "debug": False,
    "backup": "",
    "keep_backups": 3,
    "probe_timeout": 20.0,
    "smoke_tools": "get_server_info,current_date",
    "propagated": False,
}

#: Task flags shared by every phase task (flag name -> help text).
FLAG_HELP: dict[str, str] = {
    "source": "prAxIs OS source: a clean git checkout, or a git URL (cloned to a temp dir).",
    "project": "Project directory holding .praxis-os/ (default: the current directory).",
    "dry_run": "Print the plan and exit; writes nothing at all.",
    "yes": "Never prompt.",
    "on_conflict": "File changed by you and upstream: merge (default: three-way merge; a "
    "conflicting one keeps yours and writes NAME.praxis-merge + NAME.praxis-new), keep (yours "
    "stays, NAME.praxis-new beside it), theirs (take upstream; yours is in the backup), abort "
    "(stop before any change, exit 5), ask (decide per file on a terminal).",
    "deps": "Dependencies: auto (install only if requirements changed), skip, force.",
    "no_restart": "Do not stop or restart the running MCP server.",
    "debug": "Show tracebacks for errors.",
    "allow_downgrade": "Allow a source older than the installed commit.",
    "find_links": "Install dependencies from this wheelhouse directory too (pip/uv --find-links).",
    "offline": "Never reach a package index (with --find-links: install only from the wheelhouse).",
    "post_install": "Post-install steps detected from requirement names (e.g. playwright "
    "browsers): auto or skip.",
}

#: Flags of the fleet rollout (upgrade, rollback and status on remote hosts over SSH).
FLEET_HELP: dict[str, str] = {
    "hosts": "Run on these hosts over SSH: user@host[:port] or ~/.ssh/config aliases, "
    "comma-separated, or @FILE (one per line).",
    "parallel": "How many hosts at a time (default 1).",
    "canary": "Upgrade this many hosts first; if any canary fails, the rollout stops.",
    "max_fail": "Failure budget in percent of all hosts: the rollout stops before its next batch "
    "once MORE than this share of all hosts has failed (default 0: any failure stops it).",
    "accept_new_host_keys": "Trust and record host keys not yet in known_hosts (default: refuse).",
    "identity": "SSH private key file.",
    "known_hosts": "known_hosts file to check host keys against (default ~/.ssh/known_hosts).",
    "ssh_config": "ssh_config file for host aliases (default ~/.ssh/config).",
    "sudo": "Run the engine on the hosts with sudo (installs owned by another user); the password "
    "comes from PRAXIS_SUDO_PASSWORD or a prompt, never a command line.",
    "remote_dir": "Absolute directory on the hosts for the zipapp, snapshots and run logs "
    "(default ~/.cache/praxis-upgrade).",
    "report_dir": "Where the fleet report (report.json) and failed.txt are written.",
}


@dataclass(frozen=True)
class Options:
    source: str
    project: Path
    dry_run: bool
    yes: bool
    on_conflict: str
    deps: str
    no_restart: bool
    debug: bool
    allow_downgrade: bool
    find_links: str
    offline: bool
    post_install: str
    backup: str
    keep_backups: int
    probe_timeout: float
    smoke_tools: tuple[str, ...]
    hosts: str = ""
    parallel: int = 1
    canary: int = 0
    max_fail: float = 0.0
    accept_new_host_keys: bool = False
    identity: str = ""
    known_hosts: str = ""
    ssh_config: str = ""
    sudo: bool = False
    remote_dir: str = ""
    report_dir: str = ".praxis-fleet"

    @classmethod
    def from_config(cls, section: Any) -> Options:
        def get(key: str) -> Any:
            try:
                value = section[key]
            except (KeyError, TypeError):
                value = None
            return CONFIG_DEFAULTS[key] if value is None else value

        on_conflict = str(get("on_conflict"))
        if on_conflict not in ON_CONFLICT:
            raise UsageError(
                f"--on-conflict {on_conflict!r} is not a valid choice",
                f"valid choices are {', '.join(ON_CONFLICT)}",
                "pass one of them, e.g. --on-conflict merge",
            )
        deps = str(get("deps"))
        if deps not in DEPS:
            raise UsageError(
                f"--deps {deps!r} is not a valid choice",
                f"valid choices are {', '.join(DEPS)}",
                "pass one of them, e.g. --deps auto",
            )
        post_install = str(get("post_install"))
        if post_install not in ("auto", "skip"):
            raise UsageError(
                f"--post-install {post_install!r} is not a valid choice",
                "valid choices are auto, skip",
                "pass --post-install auto or --post-install skip",
            )
        project_raw = str(get("project") or "") or os.getcwd()
        smoke = get("smoke_tools")
        smoke_t = (
            tuple(s.strip() for s in smoke.split(",") if s.strip())
            if isinstance(smoke, str)
            else tuple(str(s) for s in smoke)
        )
        try:
            keep = int(get("keep_backups"))
            timeout = float(get("probe_timeout"))
        except (TypeError, ValueError) as exc:
            raise UsageError("bad number in the upgrade config", str(exc), "fix invoke.yaml") from exc
        if keep < 1:
            raise UsageError(
                "upgrade.keep_backups must be at least 1",
                f"got {keep}",
                "set keep_backups: 3 (the default) in invoke.yaml",
            )
        return cls(
            source=str(get("source") or ""),
            project=Path(project_raw).expanduser().absolute(),
            dry_run=bool(get("dry_run")),
            yes=bool(get("yes")),
            on_conflict=on_conflict,
            deps=deps,
            no_restart=bool(get("no_restart")),
            debug=bool(get("debug")),
            allow_downgrade=bool(get("allow_downgrade")),
            find_links=str(Path(str(get("find_links"))).expanduser().absolute())
            if get("find_links") else "",
            offline=bool(get("offline")),
            post_install=post_install,
            hosts=str(get("hosts") or ""),
            parallel=max(1, int(get("parallel"))),
            canary=max(0, int(get("canary"))),
            max_fail=float(get("max_fail")),
            accept_new_host_keys=bool(get("accept_new_host_keys")),
            identity=str(get("identity") or ""),
            known_hosts=str(get("known_hosts") or ""),
            ssh_config=str(get("ssh_config") or ""),
            sudo=bool(get("sudo")),
            remote_dir=str(get("remote_dir") or ""),
            report_dir=str(get("report_dir") or ".praxis-fleet"),
            backup=str(get("backup") or ""),
            keep_backups=keep,
            probe_timeout=timeout,
            smoke_tools=smoke_t,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "project": str(self.project),
            "dry_run": self.dry_run,
            "on_conflict": self.on_conflict,
            "deps": self.deps,
            "no_restart": self.no_restart,
            "allow_downgrade": self.allow_downgrade,
            "find_links": self.find_links,
            "offline": self.offline,
            "post_install": self.post_install,
        }
