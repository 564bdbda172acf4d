"""Phase 0 (pre-flight): every check, read-only. A refusal changes nothing.

Source: a prAxIs OS git checkout (``universal/`` and ``mcp_server/``), clean,
its commit recorded. Target: ``<project>/.praxis-os`` with a modern layout
(no ``usage/`` or ``config.json`` required), no symlinked system area. Free
space for the backup and the staging, on the filesystem that holds
``.praxis-os``. The lock is checked last, by the engine, by taking it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from .errors import ConflictAbort, PreflightError, UsageError
from .layout import Install
from .manifest import InstalledManifest, read_installed_manifest
from .plan import Plan, plan_upgrade
from .server_process import find_running_servers
from .source import Source, open_source

SYMLINK_CHECK = ("", "mcp_server", "standards", "workflows", "scripts", "standards/universal",
                 ".cache", ".cache/state")


@dataclass
class PreflightResult:
    source: Source
    manifest: InstalledManifest | None
    manifest_note: str
    plan: Plan
    space_needed: int
    space_free: int

    def artifacts(self) -> dict[str, Any]:
        return {
            "source_path": str(self.source.root),
            "source_spec": self.source.spec,
            "source_commit": self.source.commit,
            "source_branch": self.source.branch,
            "source_git_clean": True,
            "installed_commit": self.manifest.source_commit if self.manifest else None,
            "manifest_note": self.manifest_note,
            "target_exists": True,
            "target_structure_valid": True,
            "disk_space_required": self.space_needed,
            "disk_space_available": self.space_free,
            "no_concurrent_workflows": True,
            "plan_counts": self.plan.counts(),
        }

    def summary(self) -> str:
        c = self.plan.counts()
        parts = [f"{c[k]} {k}" for k in ("add", "update", "remove", "conflict", "orphan") if c.get(k)]
        srv = "server changes" if self.plan.server.changed else "server unchanged"
        return (f"source {self.source.short} ({self.source.branch}), installed "
                f"{(self.plan.installed_commit or 'unknown')[:10]}; "
                f"{', '.join(parts) or 'no content changes'}; {srv}")


def check_target(install: Install) -> None:
    if not install.project.is_dir():
        raise UsageError(
            f"project directory {install.project} does not exist",
            "--project must be the directory that holds .praxis-os/",
            "pass --project DIR (default: the current directory)",
        )
    for rel in SYMLINK_CHECK:
        p = install.root / rel if rel else install.root
        if p.is_symlink():
            raise PreflightError(
                f"{p} is a symlink (to {os.readlink(p)})",
                "writing through it would change the files it points at (often a source checkout)",
                "replace it with a real copy (cp -rL), or remove the link, then rerun",
            )
    if not install.root.is_dir():
        raise UsageError(
            f"no prAxIs OS installation in {install.project}",
            f"{install.root} does not exist",
            "pass --project pointing at the project that holds .praxis-os/, or install "
            "prAxIs OS first",
        )
    present = [d for d in ("mcp_server", "standards", "workflows") if (install.root / d).is_dir()]
    if not present:
        raise PreflightError(
            f"{install.root} does not look like a prAxIs OS installation",
            "it has none of mcp_server/, standards/, workflows/",
            "check --project; the upgrader never creates an install from nothing",
        )
    if not os.access(install.root, os.W_OK):
        raise PreflightError(
            f"{install.root} is not writable by this user",
            "the upgrade must write standards, workflows, the server and a backup there",
            "run as the owner of the install (or use --sudo on remote hosts)",
        )


def run_preflight(install: Install, source_spec: str, on_conflict: str, deps: str,
                  no_restart: bool) -> PreflightResult:
    check_target(install)
    source = open_source(source_spec)
    manifest, note = read_installed_manifest(install.installed_manifest)
    running = None
    if not no_restart:
        servers = find_running_servers(install)
        if servers:
            running = (servers[0].pid, servers[0].transport)
    plan = plan_upgrade(install, source, manifest, on_conflict, deps, running)
    if manifest is None:
        plan.notes.append(note)
    if on_conflict == "abort" and plan.conflicts:
        names = ", ".join(a.target for a in plan.conflicts[:10])
        raise ConflictAbort(
            f"{len(plan.conflicts)} file(s) changed by you were also changed upstream",
            names + (" ..." if len(plan.conflicts) > 10 else ""),
            "nothing was changed. Rerun with --on-conflict keep (keeps yours, writes "
            "NAME.praxis-new) or --on-conflict theirs (takes upstream; yours stays in the backup)",
        )
    from .backup import estimate_size

    staged = sum(f.size for f in source.server_files.values()) if plan.server.changed else 0
    written = sum(source.files[a.target].size for a in plan.actions if a.action in
                  ("add", "update", "conflict"))
    need = int((estimate_size(install, plan) + staged + written) * 1.1) + (4 << 20)
    free = shutil.disk_usage(install.root).free
    if free < need:
        raise PreflightError(
            f"not enough free space on the filesystem of {install.root}",
            f"{free / 1e6:.1f} MB free, {need / 1e6:.1f} MB needed for the backup and staging",
            "free some space (old backups live in .praxis-os/.backups/), then rerun",
        )
    return PreflightResult(source, manifest, note, plan, need, free)
